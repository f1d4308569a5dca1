-- AlterTable
ALTER TABLE "SyncRun" ADD COLUMN     "typeChanges" TEXT,
ADD COLUMN     "unfitValues" INTEGER NOT NULL DEFAULT 0;
