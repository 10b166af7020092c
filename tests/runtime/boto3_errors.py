"""InvokeEndpoint on sagebrush through boto3, as a SageMaker user writes it: the answer, and each
error caught as the exception class boto3 raises for it, checked against botocore's model of the
operation (its error shapes, their HTTP status and members).

Usage: python3 boto3_errors.py <router url> <endpoint>; prints "ok" and exits 0 when all hold.
"""

import sys

import boto3

url, endpoint = sys.argv[1], sys.argv[2]
runtime = boto3.client(
    "sagemaker-runtime",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)

model = runtime.meta.service_model
operation = model.operation_model("InvokeEndpoint")
modeled = {shape.name: shape for shape in operation.error_shapes}
for name, status in [("ValidationError", 400), ("ModelError", 424), ("ModelNotReadyException", 429),
                     ("ServiceUnavailable", 503), ("InternalFailure", 500)]:
    assert name in modeled, f"botocore models no {name} for InvokeEndpoint: {sorted(modeled)}"
    assert modeled[name].metadata["error"]["httpStatusCode"] == status, (name, modeled[name].metadata)
assert {"OriginalStatusCode", "OriginalMessage"} <= set(modeled["ModelError"].members)

row = "5.1,3.5,1.4,0.2\n"
answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
assert answer["Body"].read().decode().strip() == "setosa", answer
assert answer["InvokedProductionVariant"] == "AllTraffic", answer


def raised(expected, **request):
    """The exception `expected` (a class of runtime.exceptions) raised by the request, and nothing else."""
    try:
        runtime.invoke_endpoint(**request)
    except expected as error:
        return error
    raise AssertionError(f"no {expected.__name__} for {request}")


wrong_type = raised(runtime.exceptions.ModelError, EndpointName=endpoint, ContentType="application/json", Body="{}")
assert wrong_type.response["ResponseMetadata"]["HTTPStatusCode"] == 424
assert wrong_type.response["Error"]["Code"] == "ModelError"
assert wrong_type.response["OriginalStatusCode"] == 415, wrong_type.response
assert "text/csv" in wrong_type.response["OriginalMessage"], wrong_type.response
assert "(ModelError) when calling the InvokeEndpoint operation" in str(wrong_type), str(wrong_type)
assert "Received client error (415) from primary" in str(wrong_type), str(wrong_type)

bad_row = raised(runtime.exceptions.ModelError, EndpointName=endpoint, ContentType="text/csv", Body="5.1,oops,1.4,0.2\n")
assert bad_row.response["OriginalStatusCode"] == 400, bad_row.response

unknown = raised(runtime.exceptions.ValidationError, EndpointName="no-such-endpoint", ContentType="text/csv", Body=row)
assert unknown.response["ResponseMetadata"]["HTTPStatusCode"] == 400
assert "no-such-endpoint" in unknown.response["Error"]["Message"], unknown.response

no_variant = raised(runtime.exceptions.ValidationError, EndpointName=endpoint, ContentType="text/csv", Body=row,
                    TargetVariant="Blue")
assert "Blue" in no_variant.response["Error"]["Message"], no_variant.response

print("ok")
