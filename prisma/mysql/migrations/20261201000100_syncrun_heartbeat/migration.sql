-- AlterTable
ALTER TABLE `SyncRun` ADD COLUMN `heartbeatAt` DATETIME(3) NULL;
