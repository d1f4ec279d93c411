"""Every quality-scale rule the integration claims as done names its proof (custom_components/faceanon/
quality_scale.yaml: a test that exists, a README passage that exists, or the file that implements it), so a claim
cannot outlive what made it true."""

from __future__ import annotations

import ast
import re

import yaml
from conftest import ROOT

SCALE = ROOT / "custom_components" / "faceanon" / "quality_scale.yaml"


def test_every_done_rule_names_a_proof_that_exists() -> None:
    rules = yaml.safe_load(SCALE.read_text(encoding="utf-8"))["rules"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    proofs = dict(re.findall(r"^  ([a-z-]+): done  # (.+)$", SCALE.read_text(encoding="utf-8"), re.MULTILINE))
    done = [rule for rule, value in rules.items() if value == "done"]
    assert done and set(done) == set(proofs), sorted(set(done) ^ set(proofs))
    for rule, proof in proofs.items():
        if proof.startswith("README: "):
            assert proof[len("README: "):] in readme, (rule, proof)
            continue
        path, _, test = proof.partition("::")
        assert (ROOT / path).exists(), (rule, proof)
        if test:
            names = {node.name for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8")))
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert test in names, (rule, proof)
    # The rules claimed with a status of their own say why in a comment.
    for rule, value in rules.items():
        if isinstance(value, dict):
            assert value.get("comment"), rule
