-- CreateTable
CREATE TABLE "Attachment" (
    "id" BIGSERIAL NOT NULL,
    "sourceId" VARCHAR(64) NOT NULL,
    "formId" VARCHAR(191) NOT NULL,
    "submissionKey" VARCHAR(191) NOT NULL,
    "name" VARCHAR(255) NOT NULL,
    "questionPath" VARCHAR(512),
    "mimeType" VARCHAR(255),
    "size" BIGINT NOT NULL,
    "sha256" VARCHAR(64) NOT NULL,
    "etag" VARCHAR(255),
    "location" VARCHAR(1024) NOT NULL,
    "storedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Attachment_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Attachment_sourceId_formId_submissionKey_name_key" ON "Attachment"("sourceId", "formId", "submissionKey", "name");
