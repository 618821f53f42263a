"""Offline checks of infra/template.yaml.

  python infra/rehearse.py translate OUT.json
      SAM -> plain CloudFormation, with samtranslator, no AWS account. Local CodeUri paths become
      s3:// URIs (the real `sam deploy` uploads the directories). The output is linted with cfn-lint,
      which checks SAM resources only after translation.

  python infra/rehearse.py deploy STACK_NAME REPORT.json
      Rehearses a deploy into moto's CloudFormation (AWS_ENDPOINT_URL): creates the secrets, uploads
      stand-in function zips to a moto bucket, translates, creates the stack and waits for it, then
      writes what was deployed (functions with their resolved environment, event source mappings) to
      REPORT.json. The Rust test tests/infra_template.rs loads the functions' configuration from that
      environment and checks the tables and queues it names against the code.

Runs with the iac venv (scripts/python/iac.in): aws-sam-translator, boto3, cfn-lint.
"""

import io
import json
import os
import sys
import time
import zipfile

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "template.yaml")
REGION = os.environ.get("AWS_REGION", "us-east-1")
# samtranslator reads the region from boto's environment, not from the pseudo-parameters.
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

# Parameters without defaults, as a first deploy would give them.
PARAMETERS = {
    "AppSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:wahook/app-secret-AbCdEf",
    "VerifyTokenArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:wahook/verify-token-AbCdEf",
    "AccessTokenArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:wahook/access-token-AbCdEf",
    "DefaultPhoneNumberId": "106540352242922",
    # Set, so the conditional template-sync function is rehearsed too.
    "WabaId": "102290129340398",
    # A rehearsal must be removable: no deletion protection.
    "DeletionProtection": "false",
}


class NoManagedPolicyLookup:
    """The template names no managed policy by name, so nothing needs looking up in IAM."""

    def load(self):
        return {}


def translated(bucket):
    with open(TEMPLATE) as f:
        sam = yaml_parse(f.read())
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            binary = resource["Properties"]["CodeUri"].rstrip("/").split("/")[-1]
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{binary}.zip"
    parameters = {"AWS::Region": REGION, "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    parameters.update(PARAMETERS)
    return transform(sam, parameters, NoManagedPolicyLookup())


def write_translated(out):
    cfn = translated("wahook-artifacts")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(cfn, f, indent=2, sort_keys=True)
    print(f"translated {TEMPLATE} -> {out} ({len(cfn['Resources'])} resources)")


def stand_in_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho rehearsal stand-in\n")
    return buf.getvalue()


def create_secrets(session, stack):
    """Real secrets in the emulator, so the deployed functions' configuration loads as in Lambda."""
    sm = session.client("secretsmanager")
    values = {
        "AppSecretArn": "rehearsal-app-secret",
        "VerifyTokenArn": "rehearsal-verify-token",
        "AccessTokenArn": "rehearsal-access-token",
    }
    for parameter, value in values.items():
        arn = sm.create_secret(Name=f"{stack}/{parameter}", SecretString=value)["ARN"]
        PARAMETERS[parameter] = arn


def deploy(stack, report_path):
    session = boto3.session.Session(region_name=REGION)
    create_secrets(session, stack)
    s3 = session.client("s3")
    cfn_client = session.client("cloudformation")
    bucket = "wahook-rehearsal-artifacts"
    s3.create_bucket(Bucket=bucket)
    for binary in ("webhook", "sender", "template-sync", "media", "publisher"):
        s3.put_object(Bucket=bucket, Key=f"{binary}.zip", Body=stand_in_zip())
    template = translated(bucket)
    cfn_client.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        status = cfn_client.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
            break
        time.sleep(0.5)
    if status != "CREATE_COMPLETE":
        events = cfn_client.describe_stack_events(StackName=stack)["StackEvents"]
        failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
        sys.exit(f"rehearsal stack {stack} ended {status}: {failed}")
    created = cfn_client.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    kinds = {}
    for r in created:
        kinds[r["ResourceType"]] = kinds.get(r["ResourceType"], 0) + 1
    print(f"rehearsal stack {stack}: CREATE_COMPLETE, {len(created)} resources: {json.dumps(kinds, sort_keys=True)}")
    # moto lists what it cannot create with neither type nor id: compare with the template instead.
    typed = {r["LogicalResourceId"] for r in created if r["ResourceType"]}
    untyped = sorted(
        f"{name} ({res['Type']})" for name, res in template["Resources"].items() if name not in typed
    )
    lam = session.client("lambda")
    functions = {}
    for r in created:
        if r["ResourceType"] == "AWS::Lambda::Function":
            c = lam.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            functions[r["LogicalResourceId"]] = {
                "name": c["FunctionName"],
                "runtime": c.get("Runtime"),
                "handler": c.get("Handler"),
                "timeout": c.get("Timeout"),
                "environment": c.get("Environment", {}).get("Variables", {}),
            }
    mappings = [
        {
            "function": m["FunctionArn"].split(":")[-1],
            "queue_arn": m["EventSourceArn"],
            "batch_size": m.get("BatchSize"),
            "response_types": m.get("FunctionResponseTypes", []),
        }
        for m in lam.list_event_source_mappings()["EventSourceMappings"]
        if m["FunctionArn"].split(":")[-1].startswith(f"{stack}-")
    ]
    report = {"stack": stack, "region": REGION, "functions": functions, "event_source_mappings": mappings,
              "not_created_by_the_emulator": untyped}
    os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    print(f"moto accepted but did not create: {', '.join(untyped) or 'nothing'}; report in {report_path}")


def main():
    if sys.argv[1:2] == ["translate"] and len(sys.argv) == 3:
        write_translated(sys.argv[2])
    elif sys.argv[1:2] == ["deploy"] and len(sys.argv) == 4:
        deploy(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
