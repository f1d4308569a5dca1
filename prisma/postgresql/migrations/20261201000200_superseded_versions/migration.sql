-- AlterTable
ALTER TABLE "Submission" ADD COLUMN     "replaces" VARCHAR(191);

-- CreateTable
CREATE TABLE "SupersededVersion" (
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "key" VARCHAR(191) NOT NULL,
    "version" VARCHAR(191) NOT NULL,

    CONSTRAINT "SupersededVersion_pkey" PRIMARY KEY ("sourceId","formId","key","version")
);

-- Backfill: the lineage already stored (Kobo edits carry meta/deprecatedID in their data).
UPDATE "Submission" SET "replaces" = "data"->>'meta/deprecatedID'
WHERE jsonb_typeof("data"->'meta/deprecatedID') = 'string' AND length("data"->>'meta/deprecatedID') BETWEEN 1 AND 191;
INSERT INTO "SupersededVersion" ("sourceId", "formId", "key", "version")
SELECT "sourceId", "formId", "key", "replaces" FROM "Submission" WHERE "replaces" IS NOT NULL
ON CONFLICT DO NOTHING;
