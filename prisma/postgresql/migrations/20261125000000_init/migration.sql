-- CreateTable
CREATE TABLE "Submission" (
    "id" BIGSERIAL NOT NULL,
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "key" VARCHAR(191) NOT NULL,
    "version" VARCHAR(191) NOT NULL,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    "submittedAt" TIMESTAMPTZ(3) NOT NULL,
    "deleted" BOOLEAN NOT NULL DEFAULT false,
    "deletedAt" TIMESTAMPTZ(3),
    "stateSeenAt" TIMESTAMPTZ(3) NOT NULL,
    "data" JSONB NOT NULL,
    "via" VARCHAR(16) NOT NULL,
    "loadedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Submission_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "SyncState" (
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "cursor" JSONB,
    "lastRunAt" TIMESTAMPTZ(3),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "SyncState_pkey" PRIMARY KEY ("sourceId","formId")
);

-- CreateTable
CREATE TABLE "SyncRun" (
    "id" BIGSERIAL NOT NULL,
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "mode" VARCHAR(16) NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL,
    "finishedAt" TIMESTAMPTZ(3),
    "fetched" INTEGER NOT NULL DEFAULT 0,
    "enqueued" INTEGER NOT NULL DEFAULT 0,
    "outcome" VARCHAR(16) NOT NULL,
    "error" TEXT,
    "cursorFrom" JSONB,
    "cursorTo" JSONB,

    CONSTRAINT "SyncRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "DeadLetter" (
    "id" BIGSERIAL NOT NULL,
    "queue" VARCHAR(64) NOT NULL,
    "jobName" VARCHAR(64) NOT NULL,
    "jobId" VARCHAR(191),
    "sourceId" VARCHAR(64),
    "formId" VARCHAR(191),
    "payload" TEXT NOT NULL,
    "error" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL,
    "failedAt" TIMESTAMPTZ(3) NOT NULL,
    "replayedAt" TIMESTAMPTZ(3),

    CONSTRAINT "DeadLetter_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "FormSchema" (
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "version" VARCHAR(191) NOT NULL,
    "definition" JSONB NOT NULL,
    "fetchedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "FormSchema_pkey" PRIMARY KEY ("sourceId","formId","version")
);

-- CreateIndex
CREATE INDEX "Submission_sourceId_formId_updatedAt_idx" ON "Submission"("sourceId", "formId", "updatedAt");

-- CreateIndex
CREATE UNIQUE INDEX "Submission_sourceId_formId_key_key" ON "Submission"("sourceId", "formId", "key");

-- CreateIndex
CREATE INDEX "SyncRun_sourceId_formId_startedAt_idx" ON "SyncRun"("sourceId", "formId", "startedAt");

-- CreateIndex
CREATE INDEX "DeadLetter_failedAt_idx" ON "DeadLetter"("failedAt");
