-- Identifiers (source, form, key, version) compare byte for byte, as on PostgreSQL:
-- ODK xmlFormIds that differ only in case or accents are different forms.

-- CreateTable
CREATE TABLE `Submission` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `key` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `version` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `updatedAt` DATETIME(3) NOT NULL,
    `submittedAt` DATETIME(3) NOT NULL,
    `deleted` BOOLEAN NOT NULL DEFAULT false,
    `deletedAt` DATETIME(3) NULL,
    `stateSeenAt` DATETIME(3) NOT NULL,
    `data` JSON NOT NULL,
    `via` VARCHAR(16) NOT NULL,
    `loadedAt` DATETIME(3) NOT NULL,

    INDEX `Submission_sourceId_formId_updatedAt_idx`(`sourceId`, `formId`, `updatedAt`),
    UNIQUE INDEX `Submission_sourceId_formId_key_key`(`sourceId`, `formId`, `key`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `SyncState` (
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `cursor` JSON NULL,
    `lastRunAt` DATETIME(3) NULL,
    `updatedAt` DATETIME(3) NOT NULL,

    PRIMARY KEY (`sourceId`, `formId`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `SyncRun` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `mode` VARCHAR(16) NOT NULL,
    `startedAt` DATETIME(3) NOT NULL,
    `finishedAt` DATETIME(3) NULL,
    `fetched` INTEGER NOT NULL DEFAULT 0,
    `enqueued` INTEGER NOT NULL DEFAULT 0,
    `outcome` VARCHAR(16) NOT NULL,
    `error` TEXT NULL,
    `cursorFrom` JSON NULL,
    `cursorTo` JSON NULL,

    INDEX `SyncRun_sourceId_formId_startedAt_idx`(`sourceId`, `formId`, `startedAt`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `DeadLetter` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `queue` VARCHAR(64) NOT NULL,
    `jobName` VARCHAR(64) NOT NULL,
    `jobId` VARCHAR(191) NULL,
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NULL,
    `payload` LONGTEXT NOT NULL,
    `error` TEXT NOT NULL,
    `attempts` INTEGER NOT NULL,
    `failedAt` DATETIME(3) NOT NULL,
    `replayedAt` DATETIME(3) NULL,

    INDEX `DeadLetter_failedAt_idx`(`failedAt`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `FormSchema` (
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `version` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `definition` JSON NOT NULL,
    `fetchedAt` DATETIME(3) NOT NULL,

    PRIMARY KEY (`sourceId`, `formId`, `version`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
