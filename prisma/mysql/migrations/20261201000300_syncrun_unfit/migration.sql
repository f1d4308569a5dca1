-- AlterTable
ALTER TABLE `SyncRun` ADD COLUMN `typeChanges` TEXT NULL,
    ADD COLUMN `unfitValues` INTEGER NOT NULL DEFAULT 0;
