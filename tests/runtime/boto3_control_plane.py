"""The workshop's SageMaker flow on sagebrush through boto3, as a SageMaker user writes it: the
training data put in a bucket with S3's client, a training job on it at its s3:// URI and its waiter, a model, an endpoint configuration, an
endpoint and its waiter, an invocation, an update to a second configuration, tags, the deletes; and
each mistake caught as the exception class boto3 raises for it, checked against botocore's model
of the operation.

Usage: python3 boto3_control_plane.py <server url> <training data file>; prints "ok" and exits 0
when all hold.
"""

import sys

import boto3

url, training_file = sys.argv[1], sys.argv[2]
session = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
sagemaker = boto3.client("sagemaker", **session)
runtime = boto3.client("sagemaker-runtime", **session)
s3 = boto3.client("s3", **session)
role = "arn:aws:iam::000000000000:role/SageMakerRole"


def modeled(operation, code, client=sagemaker):
    """Asserts that botocore's model of `operation` names the error `code`, as boto3 users catch it."""
    errors = {shape.name for shape in client.meta.service_model.operation_model(operation).error_shapes}
    assert code in errors, f"botocore models no {code} for {operation}: {sorted(errors)}"


def raised(expected, call, **request):
    """The exception `expected` raised by the call, and nothing else."""
    try:
        call(**request)
    except expected as error:
        return error
    raise AssertionError(f"no {expected.__name__} for {request}")


# The data, where the workshop puts it: in a bucket, by S3's API.
s3.create_bucket(Bucket="workshop")
s3.upload_file(training_file, "workshop", "iris/train.csv")
data = "s3://workshop/iris/train.csv"
listed = s3.list_objects_v2(Bucket="workshop", Prefix="iris/")
assert [o["Key"] for o in listed["Contents"]] == ["iris/train.csv"], listed
with open(training_file, "rb") as f:
    assert s3.get_object(Bucket="workshop", Key="iris/train.csv")["Body"].read() == f.read()


def train(name, leaves):
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "builtin:decision-tree", "TrainingInputMode": "File"},
        RoleArn=role,
        InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": data, "S3DataDistributionType": "FullyReplicated"}}}],
        OutputDataConfig={"S3OutputPath": "s3://workshop/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={"max_leaf_nodes": leaves},
    )
    # The waiter asks at once, then every 120 s: a quick job is over by its first question or second.
    sagemaker.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    job = sagemaker.describe_training_job(TrainingJobName=name)
    assert job["TrainingJobStatus"] == "Completed", job
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-1] == "Completed", job
    return job["ModelArtifacts"]["S3ModelArtifacts"]


for name, leaves in [("boto-a", "5"), ("boto-b", "3")]:
    artifact = train(name, leaves)
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=role,
                           PrimaryContainer={"Image": "builtin:decision-tree", "ModelDataUrl": artifact})
    sagemaker.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])

sagemaker.create_endpoint(EndpointName="boto-prod", EndpointConfigName="boto-a-config",
                          Tags=[{"Key": "team", "Value": "ml"}, {"Key": "stage", "Value": "prod"}])
waiter = dict(EndpointName="boto-prod", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
sagemaker.get_waiter("endpoint_in_service").wait(**waiter)
answer = runtime.invoke_endpoint(EndpointName="boto-prod", ContentType="text/csv", Body="5.1,3.5,1.4,0.2\n")
assert answer["Body"].read().decode().strip() == "setosa", answer
sagemaker.update_endpoint(EndpointName="boto-prod", EndpointConfigName="boto-b-config")
sagemaker.get_waiter("endpoint_in_service").wait(**waiter)
described = sagemaker.describe_endpoint(EndpointName="boto-prod")
assert described["EndpointConfigName"] == "boto-b-config", described

# Tags, as scripts and cost reports read and write them.
endpoint_arn = described["EndpointArn"]
tags = lambda arn: {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
assert tags(endpoint_arn) == {"team": "ml", "stage": "prod"}, tags(endpoint_arn)
sagemaker.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": "owner", "Value": "ops@example.com"}])
sagemaker.delete_tags(ResourceArn=endpoint_arn, TagKeys=["stage"])
assert tags(endpoint_arn) == {"team": "ml", "owner": "ops@example.com"}, tags(endpoint_arn)
job_arn = sagemaker.describe_training_job(TrainingJobName="boto-a")["TrainingJobArn"]
sagemaker.add_tags(ResourceArn=job_arn, Tags=[{"Key": "dataset", "Value": "iris"}])
assert tags(job_arn) == {"dataset": "iris"}, tags(job_arn)

# Mistakes, each as the class its users catch.
modeled("GetObject", "NoSuchKey", s3)
raised(s3.exceptions.NoSuchKey, s3.get_object, Bucket="workshop", Key="iris/none.csv")
modeled("ListObjectsV2", "NoSuchBucket", s3)
raised(s3.exceptions.NoSuchBucket, s3.list_objects_v2, Bucket="nowhere")
modeled("CreateBucket", "BucketAlreadyOwnedByYou", s3)
raised(s3.exceptions.BucketAlreadyOwnedByYou, s3.create_bucket, Bucket="workshop")
absent = raised(s3.exceptions.ClientError, s3.head_object, Bucket="workshop", Key="iris/none.csv")
assert absent.response["Error"]["Code"] == "404", absent.response
modeled("StopTrainingJob", "ResourceNotFound")
raised(sagemaker.exceptions.ResourceNotFound, sagemaker.stop_training_job, TrainingJobName="boto-none")
done = raised(sagemaker.exceptions.ClientError, sagemaker.stop_training_job, TrainingJobName="boto-a")
assert done.response["Error"]["Code"] == "ValidationException", done.response
assert "in status Completed" in done.response["Error"]["Message"], done.response
reserved = raised(sagemaker.exceptions.ClientError, sagemaker.add_tags, ResourceArn=endpoint_arn,
                  Tags=[{"Key": "aws:owner", "Value": "x"}])
assert reserved.response["Error"]["Code"] == "ValidationException", reserved.response
nowhere = endpoint_arn.replace("boto-prod", "boto-none")
unknown_arn = raised(sagemaker.exceptions.ClientError, sagemaker.list_tags, ResourceArn=nowhere)
assert unknown_arn.response["Error"]["Code"] == "ValidationException", unknown_arn.response
modeled("CreateTrainingJob", "ResourceInUse")
in_use = raised(sagemaker.exceptions.ResourceInUse, train, name="boto-a", leaves="5")
assert in_use.response["ResponseMetadata"]["HTTPStatusCode"] == 400, in_use.response
missing = raised(sagemaker.exceptions.ClientError, sagemaker.describe_training_job, TrainingJobName="boto-none")
assert missing.response["Error"]["Code"] == "ValidationException", missing.response
assert missing.response["Error"]["Message"] == "Requested resource not found.", missing.response
no_endpoint = raised(sagemaker.exceptions.ClientError, sagemaker.describe_endpoint, EndpointName="boto-none")
assert no_endpoint.response["Error"]["Code"] == "ValidationException", no_endpoint.response
no_config = raised(sagemaker.exceptions.ClientError, sagemaker.create_endpoint,
                   EndpointName="boto-x", EndpointConfigName="boto-none")
assert "Could not find endpoint configuration" in no_config.response["Error"]["Message"], no_config.response
unknown = raised(runtime.exceptions.ValidationError, runtime.invoke_endpoint,
                 EndpointName="boto-none", ContentType="text/csv", Body="5.1,3.5,1.4,0.2\n")
assert unknown.response["ResponseMetadata"]["HTTPStatusCode"] == 400, unknown.response

sagemaker.delete_endpoint(EndpointName="boto-prod")
sagemaker.get_waiter("endpoint_deleted").wait(**waiter)
# A deleted endpoint's tags go with it: one made again under the name starts with none.
sagemaker.create_endpoint(EndpointName="boto-prod", EndpointConfigName="boto-a-config")
sagemaker.get_waiter("endpoint_in_service").wait(**waiter)
assert tags(endpoint_arn) == {}, tags(endpoint_arn)
sagemaker.delete_endpoint(EndpointName="boto-prod")
sagemaker.get_waiter("endpoint_deleted").wait(**waiter)
for name in ["boto-a", "boto-b"]:
    sagemaker.delete_endpoint_config(EndpointConfigName=f"{name}-config")
    sagemaker.delete_model(ModelName=name)
assert sagemaker.list_endpoints()["Endpoints"] == []
assert sagemaker.list_models()["Models"] == []
print("ok")
