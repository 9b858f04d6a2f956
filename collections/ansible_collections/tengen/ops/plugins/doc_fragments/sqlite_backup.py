"""Options shared by tengen.ops.sqlite_backup and tengen.ops.sqlite_restore."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - Directory of the local backups (data files and their C(.json) manifests).
    type: path
  encryption_key:
    description:
      - 256-bit key for client-side AES-256-GCM encryption.
      - Base64 (C(openssl rand -base64 32)) or 64 hex digits.
      - Keep it in ansible-vault. A backup records the key's fingerprint, so a wrong key is named as such.
      - Needs the Python package C(cryptography) on the target (Debian C(python3-cryptography)).
      - The same as O(encryption_keys) with one key; the two are mutually exclusive.
    type: str
  encryption_keys:
    description:
      - A keyring for key rotation, newest first. The first key encrypts new backups; a backup is
        decrypted with the key whose fingerprint (key id) its manifest records, so backups made under an
        older key stay restorable while that key stays in the list.
      - Each key as in O(encryption_key).
    type: list
    elements: str
  s3:
    description:
      - Offsite copies in an S3-compatible bucket.
      - AWS S3, Lightsail object storage, DigitalOcean Spaces, MinIO.
      - Needs boto3 on the target (Debian C(python3-boto3)).
    type: dict
    suboptions:
      bucket:
        description: Bucket name.
        type: str
        required: true
      prefix:
        description: Key prefix ("folder") of the backups in the bucket.
        type: str
        default: ""
      endpoint_url:
        description: Endpoint of a non-AWS provider or of a local test server; AWS S3 when unset.
        type: str
      region:
        description: Region of the bucket.
        type: str
      access_key:
        description: Access key id; the usual AWS environment and instance credentials apply when unset.
        type: str
      secret_key:
        description: Secret access key.
        type: str
      session_token:
        description: Session token of temporary credentials.
        type: str
      sse:
        description: Server-side encryption of the stored objects.
        type: str
        choices: [AES256, "aws:kms"]
      sse_kms_key_id:
        description: KMS key for O(s3.sse=aws:kms).
        type: str
requirements:
  - python >= 3.11 on the target
  - boto3 (only with O(s3))
  - cryptography (only with O(encryption_key) or O(encryption_keys))
"""
