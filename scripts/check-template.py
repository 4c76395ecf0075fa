"""Checks on template.yaml that cfn-lint does not make, on the template as SAM expands it (offline:
samtranslator from the aws-sam-cli venv, no AWS call). Run by scripts/validate-template.sh.

- IAM: no Allow statement grants a wildcard action (`*`, `s3:*`, `s3:Get*`) or uses NotAction;
  Deny statements may (the bucket's TLS-only policy denies `s3:*`). No managed policy other than
  the two Lambda execution policies (AWSLambdaBasicExecutionRole, AWSLambdaVPCAccessExecutionRole:
  explicit logs / ec2 actions), since a managed policy's actions are not in the template.
- Every log group has a retention, and every function a log group of its own.
- The auth secret reaches the functions only through a Secrets Manager dynamic reference.
- The table is encrypted with point-in-time recovery; the bucket blocks public access and
  refuses requests without TLS; its TTL attribute is the one the code writes (TTL_ATTRIBUTE).
- Each Profile, with its conditions resolved: dynamodb sets YLAMBDA_DOC_STORE=dynamodb and no
  Redis URL, redis-url and elasticache set redis and a URL; VpcConfig, the VPC managed policy
  and the VPC / cache resources come with elasticache only.
"""
import os
import re
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

TTL_SOURCE = "shared/src/adapters/aws/dynamodb.rs"
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole",
    "service-role/AWSLambdaVPCAccessExecutionRole",
}


class NoManagedPolicies:
    """samtranslator's policy loader, offline: the template names no managed policy."""

    def load(self):
        return {}


def plain(value):
    """cfn-lint's node classes as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def strings(value):
    """Every string inside `value` (intrinsics such as Fn::If included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def statements(value, path):
    """(path, statement) for every IAM policy statement under `value`."""
    if isinstance(value, dict):
        if "Effect" in value and ("Action" in value or "NotAction" in value):
            yield path, value
        for k, v in value.items():
            yield from statements(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from statements(v, f"{path}[{i}]")


def condition_values(template, parameters):
    """Every condition's value, for `parameters` over the parameters' defaults."""
    values = {n: p.get("Default") for n, p in template.get("Parameters", {}).items()}
    values.update(parameters)
    conditions = template.get("Conditions", {})

    def value(x):
        if not isinstance(x, dict):
            return x
        [(fn, args)] = x.items()
        if fn == "Ref":
            return values[args]
        if fn == "Condition":
            return value(conditions[args])
        if fn == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if fn == "Fn::Not":
            return not value(args[0])
        if fn == "Fn::And":
            return all(value(a) for a in args)
        if fn == "Fn::Or":
            return any(value(a) for a in args)
        raise ValueError(f"cannot evaluate {fn} in a condition")

    return {name: value(c) for name, c in conditions.items()}


NO_VALUE = object()


def resolve(value, conditions):
    """`value` with every Fn::If decided and every AWS::NoValue dropped."""
    if isinstance(value, dict):
        if list(value) == ["Fn::If"]:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        items = ((k, resolve(v, conditions)) for k, v in value.items())
        return {k: v for k, v in items if v is not NO_VALUE}
    if isinstance(value, list):
        return [v for v in (resolve(v, conditions) for v in value) if v is not NO_VALUE]
    return value


# Parameters that make each profile deployable (Rules), and the doc store it must select.
PROFILES = {
    "dynamodb": ({"Profile": "dynamodb"}, "dynamodb"),
    "redis-url": ({"Profile": "redis-url", "RedisUrl": "rediss://user:pass@redis.example:6380"}, "redis"),
    "elasticache": ({"Profile": "elasticache"}, "redis"),
}


def check_profiles(expanded):
    errors = []
    for profile, (parameters, doc_store) in PROFILES.items():
        conditions = condition_values(expanded, parameters)
        resources = {
            name: resolve(r, conditions)
            for name, r in expanded["Resources"].items()
            if conditions.get(r.get("Condition"), True)
        }
        in_vpc = profile == "elasticache"
        networked = sorted(
            n for n, r in resources.items() if r["Type"].startswith(("AWS::EC2::", "AWS::ElastiCache::"))
        )
        if bool(networked) != in_vpc:
            errors.append(f"Profile={profile}: VPC / cache resources {networked or 'missing'}")
        for name, r in resources.items():
            for arn in strings(r.get("Properties", {}).get("ManagedPolicyArns", [])):
                if not any(arn.endswith(":policy/" + p) for p in ALLOWED_MANAGED_POLICIES):
                    errors.append(f"Profile={profile}: {name}: managed policy {arn} (write its actions out instead)")
            if r["Type"] != "AWS::Lambda::Function":
                continue
            props = r["Properties"]
            variables = props.get("Environment", {}).get("Variables", {})
            where = f"Profile={profile}: {name}"
            if variables.get("YLAMBDA_DOC_STORE") != doc_store:
                errors.append(f"{where}: YLAMBDA_DOC_STORE is {variables.get('YLAMBDA_DOC_STORE')!r}, not {doc_store!r}")
            url = variables.get("YLAMBDA_REDIS_URL")
            if (url is None) != (doc_store == "dynamodb"):
                errors.append(f"{where}: YLAMBDA_REDIS_URL is {url!r}")
            if in_vpc and not any(s.startswith("rediss://") for s in strings(url)):
                errors.append(f"{where}: the cache URL {url!r} is not rediss://")
            if ("VpcConfig" in props) != in_vpc:
                errors.append(f"{where}: VpcConfig {'missing' if in_vpc else 'present'}")
            role = resources[props["Role"]["Fn::GetAtt"][0]]["Properties"]
            arns = list(strings(role.get("ManagedPolicyArns", [])))
            vpc_policy = any(a.endswith("/AWSLambdaVPCAccessExecutionRole") for a in arns)
            if vpc_policy != in_vpc:
                errors.append(f"{where}: AWSLambdaVPCAccessExecutionRole {'missing' if in_vpc else 'attached'}")
    return errors


def main(path):
    template, matches = decode(path)
    if matches:
        sys.exit(f"{path}: cannot parse: {matches}")
    template = plain(template)
    # samtranslator wants an S3 CodeUri; the code is irrelevant here.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/key"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    expanded = transform(template, {}, NoManagedPolicies())
    resources = expanded["Resources"]
    errors = []

    for name, resource in resources.items():
        for where, statement in statements(resource.get("Properties", {}), name):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                errors.append(f"{where}: an Allow statement with NotAction")
            for action in strings(statement.get("Action", [])):
                if "*" in action:
                    errors.append(f"{where}: Allow of a wildcard action {action!r}")
        # Managed policies: in check_profiles, with their Fn::If resolved.

    log_groups = {n: r for n, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name, group in log_groups.items():
        if group.get("Properties", {}).get("RetentionInDays", {"Ref": "AWS::NoValue"}) == {
            "Ref": "AWS::NoValue"
        }:
            errors.append(f"{name}: log group without RetentionInDays")
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    for function in functions:
        wanted = {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        if not any(g["Properties"].get("LogGroupName") == wanted for g in log_groups.values()):
            errors.append(f"{function}: no log group /aws/lambda/${{{function}}}")
        variables = resources[function]["Properties"].get("Environment", {}).get("Variables", {})
        if "YLAMBDA_AUTH_SECRET" in variables:
            values = list(strings(variables["YLAMBDA_AUTH_SECRET"]))
            for value in values:
                if value not in ("AuthHs256", "GenerateAuthSecret", "AuthSecretVersioned", "AWS::NoValue") and not (
                    value.startswith("{{resolve:secretsmanager:")
                ):
                    errors.append(f"{function}: YLAMBDA_AUTH_SECRET from {value!r}, not a secret")

    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            if props.get("SSESpecification", {}).get("SSEEnabled") is not True:
                errors.append(f"{name}: SSESpecification.SSEEnabled is not true")
            pitr = props.get("PointInTimeRecoverySpecification", {})
            if pitr.get("PointInTimeRecoveryEnabled") is not True:
                errors.append(f"{name}: point-in-time recovery is off")
            source = open(os.path.join(os.path.dirname(__file__), "..", TTL_SOURCE)).read()
            wanted = re.search(r'TTL_ATTRIBUTE: &str = "([^"]+)"', source).group(1)
            ttl = props.get("TimeToLiveSpecification", {})
            if ttl.get("AttributeName") != wanted or ttl.get("Enabled") is not True:
                errors.append(f"{name}: TTL is not on {wanted!r} ({TTL_SOURCE})")
        if resource["Type"] == "AWS::S3::Bucket":
            block = props.get("PublicAccessBlockConfiguration", {})
            for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
                if block.get(key) is not True:
                    errors.append(f"{name}: PublicAccessBlockConfiguration.{key} is not true")
            if "BucketEncryption" not in props:
                errors.append(f"{name}: no BucketEncryption")
            denies_plain_http = any(
                p["Type"] == "AWS::S3::BucketPolicy"
                and p["Properties"].get("Bucket") == {"Ref": name}
                and any(
                    s.get("Effect") == "Deny"
                    and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                    for s in p["Properties"]["PolicyDocument"]["Statement"]
                )
                for p in resources.values()
            )
            if not denies_plain_http:
                errors.append(f"{name}: no bucket policy denying aws:SecureTransport false")

    errors += check_profiles(expanded)
    for error in errors:
        print(f"{path}: {error}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"{path}: IAM actions explicit, log retention set, secrets and storage hardened")
    print(f"{path}: profiles {', '.join(PROFILES)}: doc store, Redis URL, VPC and its policy as each needs")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
