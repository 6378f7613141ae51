#!/usr/bin/env python3
"""Uploads one photo to Gridline with tuspy, the stock tus client for Python, used as its
documentation shows: no code of its own for this server.

The upload URL is kept in a tuspy URL storage file, keyed by the file's fingerprint, so that
running this again with the same storage file resumes the upload where the server stands
(tuspy asks with HEAD) instead of starting over.

Prints one JSON line: {"url", "offset"} once the upload is finished, or {"error", "status"}
when tuspy gives up (the connection was cut, or the server refused); the exit status is then 3.
Any other exit status is a fault of this script or of the Python setup.
"""

import argparse
import json
import os
import sys

from tusclient import client
from tusclient.exceptions import TusCommunicationError
from tusclient.storage import filestorage

GAVE_UP = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True, help="the server's /v1/uploads URL")
    parser.add_argument("--token", required=True, help="a bearer access token")
    parser.add_argument("--file", required=True, help="the photo to upload")
    parser.add_argument("--sha256", required=True, help="the photo's SHA-256, lowercase hex")
    parser.add_argument("--url-storage", required=True, help="tuspy URL storage file")
    args = parser.parse_args()

    tus = client.TusClient(args.endpoint, headers={"Authorization": f"Bearer {args.token}"})
    try:
        uploader = tus.uploader(
            args.file,
            metadata={"sha256": args.sha256, "filename": os.path.basename(args.file)},
            store_url=True,
            url_storage=filestorage.FileStorage(args.url_storage),
        )
        uploader.upload()
    except TusCommunicationError as error:  # TusUploadFailed too
        print(json.dumps({"error": str(error), "status": error.status_code}))
        return GAVE_UP
    print(json.dumps({"url": uploader.url, "offset": uploader.offset}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
