# syntax=docker/dockerfile:1
# One image for the three fieldsync apps (ingress, poller, loader) and the
# migration runner. The apps run their TypeScript directly with tsx, so the
# image is the installed and built workspace; docker-compose.yml picks the app
# with its command, e.g. `pnpm --filter @fieldsync/loader start`.
FROM node:20-bookworm-slim

# openssl: Prisma's platform detection looks for it during `prisma generate`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*

# The pnpm the lockfile was written with (package.json "devEngines").
RUN npm install -g pnpm@12.21.0 && npm cache clean --force

WORKDIR /app

# Dependencies first, so this layer stays cached until the lockfile changes:
# `pnpm fetch` needs only the lockfile. No install script is needed (see
# pnpm-workspace.yaml), and the Prisma clients are generated below, not at install.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json .npmrc ./
RUN pnpm fetch

COPY . .
# devDependencies are installed on purpose: tsx runs the apps, prisma generates the clients.
RUN pnpm install --offline --frozen-lockfile \
 && TURBO_TELEMETRY_DISABLED=1 pnpm build

ENV NODE_ENV=production
# The app only reads /app; tsx writes its cache under /tmp.
USER node
EXPOSE 3000
CMD ["pnpm", "--filter", "@fieldsync/ingress", "start"]
