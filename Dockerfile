# syntax=docker/dockerfile:1
# One image for the three fieldsync apps (ingress, poller, loader) and every
# operator verb. The apps run their TypeScript directly with tsx, so the image
# is the installed and built workspace. The entrypoint is `./fieldsync`, as on
# a machine: docker-compose.yml picks the verb with its command (`start loader`,
# `migrate`), and one-off runs are `docker compose run --rm loader check`.
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
# Installed and built above: ./fieldsync skips its install checks (the image is read-only to `node`).
ENV FIELDSYNC_SKIP_SETUP=1
# The app only reads /app; tsx writes its cache under /tmp.
USER node
EXPOSE 3000
# bash execs node: the app is PID 1 and gets SIGTERM itself (it drains, then exits).
ENTRYPOINT ["./fieldsync"]
CMD ["start", "ingress"]
