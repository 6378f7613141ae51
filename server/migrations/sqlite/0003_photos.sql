-- Photo evidence: content-addressed originals, resumable (tus) uploads in progress, per-case
-- integrity flags and the log of who looked at which photo.
--
-- Blob layout: `photos/{sha256}` (the original, never altered), `derivatives/{sha256}/thumb.jpg`
-- and `.../preview.jpg`, and `uploads/{upload id}/{offset:020}-{piece id}` (parts of an upload
-- in progress, deleted once it completes or expires).

-- One row per distinct photo the server has checked. `status` is 'verified' (the bytes hash to
-- `sha256` and pass validation; the original is stored) or 'rejected' (`error_code` says why;
-- nothing is stored).
CREATE TABLE photos (
    sha256          TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    error_code      TEXT,
    size            BIGINT NOT NULL,
    mime            TEXT,
    width           BIGINT,
    height          BIGINT,
    exif_taken_at   BIGINT,
    exif_lat        DOUBLE PRECISION,
    exif_lon        DOUBLE PRECISION,
    orientation     BIGINT,
    make            TEXT,
    model           TEXT,
    uploaded_by     TEXT NOT NULL,
    verified_at     BIGINT,
    -- Thumbnail and preview: 'pending', 'ready', 'failed' or 'none' (a type not decoded: HEIC).
    derivatives     TEXT NOT NULL,
    derivative_attempts BIGINT NOT NULL,
    derivative_error TEXT,
    -- When the worker may next try (also its lease: a claim pushes this forward).
    derivative_next_at BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX photos_derivatives ON photos(derivatives, derivative_next_at);

-- A tus upload in progress (or complete, kept until it expires so a HEAD still answers).
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    length      BIGINT NOT NULL,
    received    BIGINT NOT NULL,
    -- 'receiving' or 'complete'.
    state       TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads(expires_at);

-- The pieces of an upload in the blob store, in offset order.
CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    start       BIGINT NOT NULL,
    length      BIGINT NOT NULL,
    object_key  TEXT NOT NULL,
    PRIMARY KEY (upload_id, start)
);

-- Integrity flags of a photo as evidence for one case, computed when the photo was verified.
CREATE TABLE photo_flags (
    case_id     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    flags       TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, sha256)
);

-- Every link handed out to evidence: who, which photo and variant, when.
CREATE TABLE photo_views (
    id        TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    variant   TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX photo_views_sha ON photo_views(sha256, at);
