#!/usr/bin/env python3
"""Checks Gridline ledger checkpoints and proofs without trusting the server (see SECURITY.md).

  verify_ledger_proof.py checkpoint CHECKPOINT.json
  verify_ledger_proof.py inclusion CHECKPOINT.json PROOF.json
  verify_ledger_proof.py consistency FIRST.json SECOND.json PROOF.json

CHECKPOINT.json is a checkpoint as served by GET /v1/ledger/checkpoint, PROOF.json a proof as
served by GET /v1/ledger/proof/inclusion or /v1/ledger/proof/consistency. Every checkpoint's
Ed25519 signature is checked first, with the key given by --public-key (base64 of its 32
bytes, as the operator publishes it; without it the key in the checkpoint is taken, which only
shows that the checkpoint is self-consistent). The Merkle proofs are checked as RFC 9162
§2.1.3.2 and §2.1.4.2 say, with hashlib. The signature is checked with the `cryptography`
package when it is installed, otherwise (or with --openssl) with `openssl pkeyutl -verify`.

Prints what holds and exits 0, or prints why not and exits 1.
"""

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile

CHECKPOINT_FORMAT = "gridline-ledger-checkpoint-v1"
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class Failed(Exception):
    pass


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def checkpoint_text(cp):
    return "%s\ntree_size=%d\nroot_hash=%s\ntimestamp=%d\n" % (
        CHECKPOINT_FORMAT,
        cp["tree_size"],
        cp["root_hash"],
        cp["timestamp"],
    )


def ed25519_valid(public_key, signature, message, use_openssl):
    if not use_openssl:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            use_openssl = True
    if not use_openssl:
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False
    der = ED25519_SPKI_PREFIX + public_key
    pem = "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % (
        base64.b64encode(der).decode()
    )
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, data in (("key.pem", pem.encode()), ("msg", message), ("sig", signature)):
            paths[name] = os.path.join(d, name)
            with open(paths[name], "wb") as f:
                f.write(data)
        done = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", paths["key.pem"],
             "-rawin", "-in", paths["msg"], "-sigfile", paths["sig"]],
            capture_output=True,
        )
        return done.returncode == 0


def check_checkpoint(cp, public_key_b64, use_openssl):
    """The checkpoint's signature holds; returns its root as bytes."""
    key_b64 = public_key_b64 or cp["public_key"]
    key = base64.b64decode(key_b64)
    if len(key) != 32:
        raise Failed("the public key is not 32 bytes")
    if hashlib.sha256(key).hexdigest()[:16] != cp["key_id"]:
        raise Failed("key_id %s is not the id of the public key" % cp["key_id"])
    signature = base64.b64decode(cp["signature"])
    if not ed25519_valid(key, signature, checkpoint_text(cp).encode(), use_openssl):
        raise Failed("the signature of the checkpoint of tree size %d does not verify"
                     % cp["tree_size"])
    root = bytes.fromhex(cp["root_hash"])
    if len(root) != 32:
        raise Failed("root_hash is not 32 bytes")
    return root


def root_from_inclusion(index, size, leaf, path):
    """RFC 9162 §2.1.3.2: the root that `path` leads to from leaf `index` of `size`."""
    if index >= size:
        raise Failed("leaf index %d is not in a tree of %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Failed("the audit path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failed("the audit path is too short")
    return r


def check_consistency(first, second, first_root, second_root, path):
    """RFC 9162 §2.1.4.2: the tree of `second` extends the tree of `first`."""
    if not 0 < first <= second:
        raise Failed("sizes %d and %d cannot be consistent" % (first, second))
    if first == second:
        if path or first_root != second_root:
            raise Failed("two checkpoints of one size with different roots")
        return
    if not path:
        raise Failed("the consistency proof is empty")
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Failed("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise Failed("the consistency proof does not lead to both roots")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["checkpoint", "inclusion", "consistency"])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--public-key", help="the server's Ed25519 public key, base64")
    parser.add_argument("--openssl", action="store_true",
                        help="check signatures with openssl even if `cryptography` is installed")
    args = parser.parse_args()
    wanted = {"checkpoint": 1, "inclusion": 2, "consistency": 3}[args.what]
    if len(args.files) != wanted:
        parser.error("%s takes %d files" % (args.what, wanted))
    docs = [load(p) for p in args.files]
    try:
        if args.what == "checkpoint":
            check_checkpoint(docs[0], args.public_key, args.openssl)
            print("ok: checkpoint of tree size %d is signed" % docs[0]["tree_size"])
        elif args.what == "inclusion":
            cp, proof = docs
            root = check_checkpoint(cp, args.public_key, args.openssl)
            if proof["tree_size"] != cp["tree_size"]:
                raise Failed("the proof is for tree size %d, the checkpoint %d"
                             % (proof["tree_size"], cp["tree_size"]))
            leaf = leaf_hash(bytes.fromhex(proof["entry_hash"]))
            path = [bytes.fromhex(h) for h in proof["audit_path"]]
            if root_from_inclusion(proof["leaf_index"], proof["tree_size"], leaf, path) != root:
                raise Failed("the audit path does not lead to the checkpoint's root")
            print("ok: entry %s (seq %d) is in the checkpoint of tree size %d"
                  % (proof["entry_id"], proof["seq"], cp["tree_size"]))
        else:
            first, second, proof = docs
            first_root = check_checkpoint(first, args.public_key, args.openssl)
            second_root = check_checkpoint(second, args.public_key, args.openssl)
            if (proof["first"], proof["second"]) != (first["tree_size"], second["tree_size"]):
                raise Failed("the proof is for sizes %d and %d, the checkpoints %d and %d"
                             % (proof["first"], proof["second"],
                                first["tree_size"], second["tree_size"]))
            path = [bytes.fromhex(h) for h in proof["proof"]]
            check_consistency(first["tree_size"], second["tree_size"], first_root,
                              second_root, path)
            print("ok: the checkpoint of tree size %d extends that of tree size %d"
                  % (second["tree_size"], first["tree_size"]))
    except (Failed, KeyError, TypeError, ValueError) as e:
        print("FAILED: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
