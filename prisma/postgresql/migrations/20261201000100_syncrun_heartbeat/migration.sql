-- AlterTable
ALTER TABLE "SyncRun" ADD COLUMN     "heartbeatAt" TIMESTAMPTZ(3);
