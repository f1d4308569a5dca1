-- AlterTable
ALTER TABLE `Submission` ADD COLUMN `replaces` VARCHAR(191) COLLATE utf8mb4_bin NULL;

-- CreateTable
CREATE TABLE `SupersededVersion` (
    `sourceId` VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    `formId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `key` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `version` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,

    PRIMARY KEY (`sourceId`, `formId`, `key`, `version`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Backfill: the lineage already stored (Kobo edits carry meta/deprecatedID in their data).
UPDATE `Submission` SET `replaces` = JSON_UNQUOTE(JSON_EXTRACT(`data`, '$."meta/deprecatedID"'))
WHERE JSON_TYPE(JSON_EXTRACT(`data`, '$."meta/deprecatedID"')) = 'STRING'
  AND CHAR_LENGTH(JSON_UNQUOTE(JSON_EXTRACT(`data`, '$."meta/deprecatedID"'))) BETWEEN 1 AND 191;
INSERT IGNORE INTO `SupersededVersion` (`sourceId`, `formId`, `key`, `version`)
SELECT `sourceId`, `formId`, `key`, `replaces` FROM `Submission` WHERE `replaces` IS NOT NULL;
