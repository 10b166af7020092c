#!/usr/bin/env bash
# The workshop's Jenkinsfile as AWS CLI calls, pointed at a sagebrush server with --endpoint-url
# instead of at SageMaker: push the bring-your-own image to the registry that stands in for ECR,
# train it twice on data at s3:// URIs, host the first model, smoke it with the workshop's
# payload, update the endpoint in place to the second model while requests keep coming (none may
# fail), delete it; then a job that fails, and the reason the CLI shows for it.
#
# Usage: sagemaker-cli.sh <server url> <image> [suffix]
#   <image>   the image built from examples/scikit-byo/container (docker build -t <image> ...)
#   suffix    makes the jobs' and endpoint's names unique (default: the time)
# Needs: aws (PyPI awscli), docker, curl, and `sagebrush` on PATH for the same home as the server.
# The data goes up with `aws s3 cp`, as in the workshop: the server answers S3's API too, and
# keeps s3://<bucket>/<key> as the file <home>/s3/<bucket>/<key>, where a training job reads it.
set -euo pipefail

url=$1 image=$2 suffix=${3:-$(date +%s)}
here=$(cd "$(dirname "$0")" && pwd)
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
role=arn:aws:iam::000000000000:role/SageMakerRole
ecr=123456789012.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com
started=$(date +%s.%N)

sm() { aws --endpoint-url "$url" --output text sagemaker "$@"; }
step() { awk -v now="$(date +%s.%N)" -v t0="$started" -v what="$*" 'BEGIN { printf "%7.1fs  %s\n", now - t0, what }'; }
# SageMaker's waiters poll every 30 s (endpoints) to 120 s (jobs); a status loop comes first so
# the waiter's first question finds the end.
until_not() { # <status> <describe command...>
  local status=$1; shift
  for _ in $(seq 600); do
    [[ $("$@") != "$status" ]] && return 0
    sleep 0.2
  done
  echo "still $status after 600 questions" >&2
  return 1
}

step "push $image to the registry that stands in for ECR"
registry=$(sagebrush registry)
docker tag "$image" "$registry/scikit-byo:$suffix"
docker push --quiet "$registry/scikit-byo:$suffix" >/dev/null
step "aws s3 cp the training data to s3://workshop/scikit-byo/"
s3() { aws --endpoint-url "$url" s3 "$@"; }
s3 ls s3://workshop >/dev/null 2>&1 || s3 mb s3://workshop >/dev/null
s3 cp --recursive --exclude '*' --include '*.csv' "$here/data/" s3://workshop/scikit-byo/ >/dev/null
printf 'not,a,number\nat,all,here\n' | s3 cp - s3://workshop/scikit-byo/broken.csv

train() { # <job> <max_leaf_nodes> <data key>
  sm create-training-job --training-job-name "$1" --role-arn "$role" \
    --algorithm-specification "TrainingImage=$ecr/scikit-byo:$suffix,TrainingInputMode=File" \
    --input-data-config "[{\"ChannelName\":\"training\",\"DataSource\":{\"S3DataSource\":{\"S3DataType\":\"S3Prefix\",\"S3Uri\":\"s3://workshop/scikit-byo/$3\",\"S3DataDistributionType\":\"FullyReplicated\"}}}]" \
    --output-data-config S3OutputPath=s3://workshop/output \
    --resource-config InstanceType=ml.m5.large,InstanceCount=1,VolumeSizeInGB=5 \
    --stopping-condition MaxRuntimeInSeconds=600 \
    --hyper-parameters "max_leaf_nodes=$2" >/dev/null
  until_not InProgress sm describe-training-job --training-job-name "$1" --query TrainingJobStatus
}

for model in a b; do
  job=byo-$model-$suffix
  step "create-training-job $job"
  train "$job" "$([[ $model == a ]] && echo 5 || echo 3)" train.csv
  sm wait training-job-completed-or-stopped --training-job-name "$job"
  step "$job: $(sm describe-training-job --training-job-name "$job" --query 'join(`: `, [TrainingJobStatus, join(`>`, SecondaryStatusTransitions[].Status)])')"
  artifact=$(sm describe-training-job --training-job-name "$job" --query ModelArtifacts.S3ModelArtifacts)
  step "create-model $job from $artifact"
  sm create-model --model-name "$job" --execution-role-arn "$role" \
    --primary-container "Image=$ecr/scikit-byo:$suffix,ModelDataUrl=$artifact" >/dev/null
  sm create-endpoint-config --endpoint-config-name "$job" \
    --production-variants "VariantName=AllTraffic,ModelName=$job,InitialInstanceCount=1,InstanceType=ml.m5.large" >/dev/null
done

endpoint=byo-prod-$suffix
step "create-endpoint $endpoint"
sm create-endpoint --endpoint-name "$endpoint" --endpoint-config-name "byo-a-$suffix" >/dev/null
until_not Creating sm describe-endpoint --endpoint-name "$endpoint" --query EndpointStatus
sm wait endpoint-in-service --endpoint-name "$endpoint"
step "$endpoint in service"

answer=$(mktemp)
aws --endpoint-url "$url" sagemaker-runtime invoke-endpoint --endpoint-name "$endpoint" \
  --content-type text/csv --body "fileb://$here/../iris/data/payload.csv" "$answer" >/dev/null
step "invoke-endpoint: $(wc -l <"$answer") predictions"
[[ $(wc -l <"$answer") -eq 29 ]]

# Requests back to back while the endpoint moves to the second model.
failures=$(mktemp)
(
  ok=0 failed=0
  while [[ ! -e $failures.stop ]]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: text/csv' --data-binary '5.1,3.5,1.4,0.2' \
      "$url/endpoints/$endpoint/invocations" || true)
    if [[ $code == 200 ]]; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
  done
  echo "$ok $failed" >"$failures"
) &
load=$!
step "update-endpoint $endpoint to byo-b-$suffix"
sm update-endpoint --endpoint-name "$endpoint" --endpoint-config-name "byo-b-$suffix" >/dev/null
until_not Updating sm describe-endpoint --endpoint-name "$endpoint" --query EndpointStatus
sm wait endpoint-in-service --endpoint-name "$endpoint"
touch "$failures.stop"
wait "$load"
read -r ok failed <"$failures"
rm -f "$failures" "$failures.stop" "$answer"
step "$endpoint serves $(sm describe-endpoint --endpoint-name "$endpoint" --query EndpointConfigName): $ok requests answered during the update, $failed failed"
[[ $failed -eq 0 && $ok -gt 0 ]]

sm delete-endpoint --endpoint-name "$endpoint"
sm wait endpoint-deleted --endpoint-name "$endpoint"
step "delete-endpoint $endpoint"

job=byo-broken-$suffix
step "create-training-job $job on data it cannot read"
train "$job" 5 broken.csv
if sm wait training-job-completed-or-stopped --training-job-name "$job" 2>/dev/null; then
  echo "$job should have failed" >&2
  exit 1
fi
step "$job: $(sm describe-training-job --training-job-name "$job" --query 'join(`: `, [TrainingJobStatus, FailureReason])')"
step "ok"
