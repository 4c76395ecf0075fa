#!/usr/bin/env bash
# Runs inside LocalStack once it is ready: the connections table (pk/sk, GSI gs1 on sk + data,
# TTL on ttl) and the snapshot bucket, exactly as template.yaml declares them.
set -euo pipefail
table="${YLAMBDA_TABLE:-ylambda}"
bucket="${YLAMBDA_BUCKET:-ylambda-snapshots}"

if ! awslocal dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
  awslocal dynamodb create-table \
    --table-name "$table" \
    --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S AttributeName=data,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --global-secondary-indexes 'IndexName=gs1,KeySchema=[{AttributeName=sk,KeyType=HASH},{AttributeName=data,KeyType=RANGE}],Projection={ProjectionType=ALL}'
  awslocal dynamodb update-time-to-live --table-name "$table" \
    --time-to-live-specification Enabled=true,AttributeName=ttl
fi
awslocal s3api head-bucket --bucket "$bucket" 2>/dev/null || awslocal s3 mb "s3://$bucket"
echo "ylambda: table $table and bucket $bucket ready"
