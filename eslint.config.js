// One lint config for the whole workspace; each package runs `eslint src`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/src/generated/**', '**/node_modules/**', '**/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Errors must reach BullMQ / the caller; an empty catch hides them unless it says why.
      'no-empty': ['error', { allowEmptyCatch: false }],
      'no-console': 'off',
    },
  },
);
