-- CreateTable
CREATE TABLE `Attachment` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `submissionKey` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `name` VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    `questionPath` VARCHAR(512) NULL,
    `mimeType` VARCHAR(255) NULL,
    `size` BIGINT NOT NULL,
    `sha256` VARCHAR(64) NOT NULL,
    `etag` VARCHAR(255) NULL,
    `location` VARCHAR(1024) NOT NULL,
    `storedAt` DATETIME(3) NOT NULL,

    UNIQUE INDEX `Attachment_sourceId_formId_submissionKey_name_key`(`sourceId`, `formId`, `submissionKey`, `name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
