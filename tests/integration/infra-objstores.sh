#!/bin/bash
# Self-test of the object-store test infrastructure: the shared radosgw
# (tests/lib/rgw.sh, through boto3 and /usr/bin/aws) and azurite
# (tests/lib/azurite.sh, through azurite_py). Does not run burry.
# needs: rgw
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
. tests/lib/lib.sh
. tests/lib/rgw.sh
. tests/lib/azurite.sh
t_tmpdir

# Run alone (not from tests/run.sh): start a private radosgw.
if [ -z "${RGW_ENDPOINT:-}" ]; then
    trap 'rgw_stop "$T_TMP/rgw"; t_cleanup' EXIT
    if ! rgw_start "$T_TMP/rgw"; then
        not_ok "radosgw starts"
        exit 1
    fi
fi

# One radosgw serves every script and variant: names unique per both.
bucket="infra-${BURRY_TEST_VARIANT:-solo}-$$"

# --- S3 (radosgw) ---
run_prog rgw_py "s3.create_bucket(Bucket='$bucket'); print([b['Name'] for b in s3.list_buckets()['Buckets']])"
expect_match "boto3 creates a bucket" "'$bucket'" "$OUT"

# 20 MB: above the aws CLI's 8 MB threshold, so it is a multipart upload.
head -c 20000000 /dev/urandom >"$T_TMP/obj.bin"
want=$(sha256sum "$T_TMP/obj.bin" | cut -d' ' -f1)
run_prog rgw_aws s3 cp --only-show-errors "$T_TMP/obj.bin" "s3://$bucket/dir/obj.bin"
expect_eq "aws s3 cp uploads (exit status)" 0 "$RC"
expect_no_match "aws output holds no secret" "$RGW_SECRET_KEY" "$OUT$ERR"

run_prog rgw_py "
import hashlib
r = s3.get_object(Bucket='$bucket', Key='dir/obj.bin')
print(hashlib.sha256(r['Body'].read()).hexdigest(), r['ETag'].strip('\"').split('-')[-1])"
expect_eq "boto3 gets back what aws put (sha256)" "$want" "${OUT% *}"
expect_match "the aws upload was multipart (ETag with a part count)" ' [0-9]+$' "$OUT"

run_prog rgw_py "print(len(s3.list_multipart_uploads(Bucket='$bucket').get('Uploads', [])))"
expect_eq "no multipart upload left open" 0 "$OUT"

# (an assignment before a function call lasts for that call only)
RGW_SECRET_KEY=not-the-secret-key run_prog rgw_py "
from botocore.exceptions import ClientError
try:
    s3.list_objects_v2(Bucket='$bucket')
    print('accepted')
except ClientError as e:
    print(e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode'])"
expect_eq "radosgw rejects a wrong secret" "SignatureDoesNotMatch 403" "$OUT"

# awscli 2.9 crashes on radosgw's error documents (they have no Message:
# "argument of type 'NoneType' is not iterable"), so only the status is checked.
RGW_SECRET_KEY=not-the-secret-key run_prog rgw_aws s3 ls "s3://$bucket/"
check "aws with a wrong secret fails" [ "$RC" -ne 0 ]

run_prog rgw_py "
for o in s3.list_objects_v2(Bucket='$bucket').get('Contents', []):
    s3.delete_object(Bucket='$bucket', Key=o['Key'])
s3.delete_bucket(Bucket='$bucket')"
expect_eq "the bucket is removed" 0 "$RC"

# --- Azure Blob (azurite) ---
if azurite_start a; then
    ok "azurite starts"
    expect_eq "AZURITE_ENDPOINT" "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1" "$AZURITE_ENDPOINT"
    run_prog azurite_py "
import hashlib
data = open('$T_TMP/obj.bin', 'rb').read()
az.create_container('infra')
az.put_blob('infra', 'dir/obj.bin', data)
az.put_blob('infra', 'note & more.txt', b'hello', content_type='text/plain')
print(az.list_blobs('infra'))
print(hashlib.sha256(az.get_blob('infra', 'dir/obj.bin')).hexdigest())
print(az.get_blob('infra', 'note & more.txt').decode())"
    expect_eq "azurite_py creates a container, puts, lists and gets blobs" \
        "['dir/obj.bin', 'note & more.txt']
$want
hello" "$OUT"
    run_prog azurite_py "
try:
    Az(key=base64.b64encode(b'x' * 64).decode()).get_blob('infra', 'dir/obj.bin')
    print('accepted')
except AzError as e:
    print(e.status)"
    expect_eq "azurite rejects a wrong key" 403 "$OUT"
else
    not_ok "azurite starts"
fi

t_done
