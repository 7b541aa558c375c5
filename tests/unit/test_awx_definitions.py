"""The AWX / automation controller definitions (extensions/awx) and the execution environment (extensions/ee).

Every job template runs a playbook of this repository; every survey question sets a
variable that the playbook hands to its role, or a variable of that role's
``meta/argument_specs.yml``, with a survey type that matches the spec's type and
choices; what the playbook requires, the survey requires; the workflow and the
schedule reference templates that exist and answer their surveys; the execution
environment carries amazon.aws and this collection at the versions tested here.

The checks are functions that return the problems they find, so that each test can
also break a copy of the definitions and see the problem named.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest
import yaml
from ansible_collections.cutover.bluegreen.plugins.module_utils.inputs import COMBINATIONS, OneOf
from dateutil.rrule import rrulestr
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO

AWX = REPO / "extensions" / "awx"
EE = REPO / "extensions" / "ee"
ROLE_PREFIX = "cutover.bluegreen."

# The controller's survey question types and the Python type of their answers.
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str, "integer": int, "float": float}
BOOL_CHOICES = {"true", "false", "yes", "no"}
TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# -- loading ---------------------------------------------------------------------------------------
def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_definitions(directory: Path = AWX) -> dict[str, Any]:
    """Every data file of extensions/awx, the surveys keyed by file name."""
    found: dict[str, Any] = {}
    for name in ("controller", "job_templates", "workflows", "schedules"):
        found.update(read_yaml(directory / f"{name}.yml"))
    found["surveys"] = {path.stem: read_yaml(path) for path in sorted((directory / "surveys").glob("*.yml"))}
    return found


def role_options(role: str) -> dict[str, dict[str, Any]]:
    """The options of a role's main entry point (``meta/argument_specs.yml``)."""
    spec = read_yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")
    return spec["argument_specs"]["main"]["options"]


class AnyName(dict):
    """Filters and tests by any name (Ansible's), for parsing templates without Ansible."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str):
        return lambda *args, **kwargs: None

    def get(self, key: str, default: Any = None):
        return self[key]


PARSER = jinja2.Environment()  # parses templates for the variables they read; never renders one
PARSER.filters, PARSER.tests = AnyName(PARSER.filters), AnyName(PARSER.tests)


def referenced(template: Any) -> set[str]:
    """Variables a templated value reads."""
    if not isinstance(template, str) or "{{" not in template:
        return set()
    tree = PARSER.parse(template)
    # an extra var named like a Jinja global (namespace) shadows it: it is not "undeclared", and is read all the same
    shadowing = {node.name for node in tree.find_all(jinja2.nodes.Name)} & set(PARSER.globals)
    return jinja2.meta.find_undeclared_variables(tree) | shadowing


def walk_strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


@dataclass
class Playbook:
    """What a playbook accepts: its role, which extra var feeds which role variable, what it requires."""

    path: str
    role: str
    options: dict[str, dict[str, Any]]
    feeds: dict[str, dict[str, str]] = field(default_factory=dict)  # extra var -> {role variable: expression}
    play_vars: set[str] = field(default_factory=set)  # read by the play itself (module_defaults, ...)
    required: set[str] = field(default_factory=set)  # `x is defined and x | length > 0`
    one_of: list[set[str]] = field(default_factory=list)  # extra vars or role variables, one of which is needed

    def accepts(self, variable: str) -> bool:
        return variable in self.feeds or variable in self.options or variable in self.play_vars

    def targets(self, variable: str) -> list[tuple[str, str | None]]:
        """(role variable, the playbook's expression or None when the variable is the role's own)."""
        if variable in self.options:
            return [(variable, None)]
        return list(self.feeds.get(variable, {}).items())


PLATFORMS = ("aws", "kubernetes")


def role_task_list(role: str, entry: dict[str, Any], path: str = "main.yml") -> list[dict[str, Any]]:
    """The tasks of a role's main.yml and of the files it includes, except includes the playbook's fixed role vars rule out.

    A step that is a task file per platform (``"{{ deploy_platform }}/pair.yml"``) counts with every platform's file;
    the user's own files (hooks) are not followed.
    """
    tasks = []
    for task in read_yaml(REPO / "roles" / role / "tasks" / path):
        tasks.append(task)
        included = task.get("ansible.builtin.include_tasks")
        if not included:
            continue
        rule = re.fullmatch(r"(\w+) (==|!=) '(\w+)'", str(task.get("when", "")).strip())
        if rule and isinstance(entry.get(rule.group(1)), str) and "{{" not in entry[rule.group(1)]:
            equal = entry[rule.group(1)] == rule.group(3)
            if equal != (rule.group(2) == "=="):
                continue
        for name in sorted({re.sub(r"\{\{\s*\w+_platform\s*\}\}", platform, included) for platform in PLATFORMS}):
            if "{{" not in name:
                tasks += role_task_list(role, entry, name)
    return tasks


def flat_tasks(tasks: list[dict[str, Any]], base: Path) -> list[dict[str, Any]]:
    """Tasks with their blocks, rescues and statically imported task files (relative to ``base``) spread out."""
    found = []
    for task in tasks or []:
        found.append(task)
        for key in ("block", "rescue", "always"):
            found += flat_tasks(task.get(key, []), base)
        imported = task.get("ansible.builtin.import_tasks")
        if imported:
            found += flat_tasks(read_yaml(base / imported), base)
    return found


def role_entry(play: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The play's role with its variables: a ``roles:`` entry, or an ``import_role`` task and its ``vars``."""
    if play.get("roles"):
        [entry] = play["roles"]
        return entry
    imports = [task for task in tasks if "ansible.builtin.import_role" in task]
    if not imports:
        return None
    [task] = imports
    return {"role": task["ansible.builtin.import_role"]["name"], **task.get("vars", {})}


def load_playbook(relative: str) -> Playbook:
    """What a playbook accepts. A fleet playbook plans in its first play (cutover.bluegreen.fleet_plan, whose
    arguments are extra vars it reads, one of service, services and service_group required) and runs the role
    in the second, on each service."""
    path = REPO / relative
    plays = read_yaml(path)
    play_tasks = [(play, flat_tasks([*play.get("pre_tasks", []), *play.get("tasks", [])], path.parent)) for play in plays]
    [(own_tasks, entry)] = [(tasks, role_entry(play, tasks)) for play, tasks in play_tasks if role_entry(play, tasks)]
    plan_args = [
        task["cutover.bluegreen.fleet_plan"] for _, tasks in play_tasks for task in tasks if "cutover.bluegreen.fleet_plan" in task
    ]
    role_name = entry["role"]
    assert role_name.startswith(ROLE_PREFIX), f"{relative}: role {role_name} is not one of the collection's"
    role = role_name.removeprefix(ROLE_PREFIX)
    book = Playbook(relative, role, role_options(role))
    for role_variable, expression in entry.items():
        if role_variable == "role":
            continue
        for variable in referenced(expression):
            book.feeds.setdefault(variable, {})[role_variable] = expression
    for each_play in plays:
        for key in ("vars", "module_defaults"):
            for text in walk_strings(each_play.get(key, {})):
                book.play_vars |= referenced(text)
    for args in plan_args:
        for text in walk_strings({key: value for key, value in args.items() if key != "usage"}):
            book.play_vars |= referenced(text)
        book.one_of.append({"service", "services", "service_group"})
    book.play_vars -= {"ansible_playbook_python", "omit", "cutover_fleet_usage"}
    role_tasks = role_task_list(role, entry)
    for task in [*own_tasks, *role_tasks]:
        check = task.get("ansible.builtin.assert")
        if not check:
            continue
        conditions = check["that"] if isinstance(check["that"], list) else [check["that"]]
        for condition in conditions:
            strict = re.fullmatch(r"(\w+) is defined and \1 \| length > 0", condition.strip())
            if strict:
                book.required.add(strict.group(1))
                continue
            # `a ... or b ... or c ...`, each alternative about one variable: one of them is needed.
            alternatives = [referenced("{{ " + part + " }}") for part in condition.split(" or ")]
            if len(alternatives) > 1 and all(len(names) == 1 for names in alternatives):
                book.one_of.append(set().union(*alternatives))
    # what the role's input check requires: one of several variables (plugins/module_utils/inputs.py)
    for rule in COMBINATIONS:
        if isinstance(rule, OneOf) and set(rule.names) <= set(book.options):
            if rule.unless and entry.get(rule.unless[0]) == rule.unless[1]:
                continue
            book.one_of.append(set(rule.choices))
    return book


def parse_ttl(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", str(text).strip())
    assert match, f"not a TTL: {text!r}"
    return int(match.group(1)) * TTL_UNITS[match.group(2) or "s"]


# -- the controller's own rules for a survey spec (its API refuses what breaks them) ----------------
def survey_spec_problems(spec: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("name", "description"):
        if not isinstance(spec.get(key), str):
            problems.append(f"survey field {key!r} is missing or not a string")
    questions = spec.get("spec")
    if not isinstance(questions, list) or not questions:
        return [*problems, "survey 'spec' must be a non-empty list"]
    seen = set()
    for index, question in enumerate(questions):
        where = f"question {index} ({question.get('variable', '?')})"
        for key, wanted in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(question.get(key), wanted):
                problems.append(f"{where}: {key!r} missing or not {wanted.__name__}")
        kind = question.get("type")
        if kind not in SURVEY_TYPES:
            problems.append(f"{where}: type {kind!r} is not a survey type")
            continue
        if question["variable"] in seen:
            problems.append(f"{where}: variable duplicated")
        seen.add(question["variable"])
        default = question.get("default")
        if default not in (None, "") and (not isinstance(default, SURVEY_TYPES[kind]) or isinstance(default, bool)):
            problems.append(f"{where}: default {default!r} is not an answer of type {kind}")
        for key in ("min", "max"):
            if key in question and not isinstance(question[key], int):
                problems.append(f"{where}: {key} must be an integer")
        if kind in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            if not isinstance(choices, list) or not all(isinstance(choice, str) for choice in choices):
                problems.append(f"{where}: {kind} needs a list of string choices")
            elif default not in (None, "") and any(item not in choices for item in str(default).splitlines()):
                problems.append(f"{where}: default {default!r} is not one of the choices {choices}")
        if default not in (None, ""):
            problems += [f"{where}: {problem}" for problem in answer_problems(question, default)]
    return problems


def answer_problems(question: dict[str, Any], value: Any) -> list[str]:
    """What the controller says of an answer at launch (type, length, bounds, choices)."""
    kind = question["type"]
    low, high = question.get("min"), question.get("max")
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{value!r} is not text"]
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            return [f"{value!r} is not {low}..{high} characters long"]
    elif kind in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, SURVEY_TYPES[kind] if kind == "integer" else (int, float)):
            return [f"{value!r} is not an {kind}"]
        if (low is not None and value < low) or (high is not None and value > high):
            return [f"{value!r} is not within {low}..{high}"]
    elif kind == "multiplechoice":
        if value not in question["choices"]:
            return [f"{value!r} is not one of {question['choices']}"]
    elif kind == "multiselect":
        values = value if isinstance(value, list) else str(value).splitlines()
        if any(item not in question["choices"] for item in values):
            return [f"{value!r} is not a selection of {question['choices']}"]
    return []


# -- survey questions against the playbook and its role --------------------------------------------
def spec_value(option: dict[str, Any], answer: Any) -> Any:
    """An answer as the role variable sees it (the bool the playbook makes of "true", ...)."""
    if option.get("type") == "bool" and isinstance(answer, str):
        return answer.lower() in ("true", "yes")
    return answer


def type_problems(question: dict[str, Any], option: dict[str, Any], expression: str | None) -> list[str]:
    """Does the answer of this question fit the role option it ends up in?"""
    kind, wanted = question["type"], option.get("type", "str")
    choices = question.get("choices") or []
    splits = expression is not None and ".split(" in expression
    if kind == "integer":
        fits = wanted == "int"
    elif kind == "float":
        fits = wanted == "float"
    elif kind in ("text", "textarea", "password"):
        fits = wanted == "str" or (wanted == "list" and splits)
    elif kind == "multiplechoice":
        fits = wanted == "str" or (wanted == "bool" and set(choices) <= BOOL_CHOICES)
    else:  # multiselect
        fits = wanted == "list"
    if not fits:
        how = f" (through {expression.strip()})" if expression else ""
        return [f"a question of type {kind} cannot feed {wanted}{how}"]
    allowed = option.get("choices")
    if allowed is not None and kind in ("multiplechoice", "multiselect"):
        extra = sorted(set(choices) - {str(choice) for choice in allowed})
        if extra:
            return [f"choices {extra} are not among the role's choices {allowed}"]
    return []


def question_problems(book: Playbook, question: dict[str, Any], role_defaults: bool) -> list[str]:
    variable = question["variable"]
    where = f"{book.path}: survey variable {variable}"
    if not book.accepts(variable):
        return [f"{where} is neither an extra var the playbook passes to {book.role} nor an option of that role"]
    problems = []
    for role_variable, expression in book.targets(variable):
        option = book.options.get(role_variable)
        if option is None:
            problems.append(f"{where} feeds {role_variable}, which is not an option of {book.role}")
            continue
        problems += [f"{where} -> {role_variable}: {problem}" for problem in type_problems(question, option, expression)]
        default = question.get("default")
        drifts = default not in (None, "") and "default" in option and spec_value(option, default) != option["default"]
        if role_defaults and expression is None and drifts:
            problems.append(f"{where}: default {default!r} differs from the role's {option['default']!r}")
    return problems


def survey_problems(book: Playbook, survey: dict[str, Any], role_defaults: bool = True, given: Any = ()) -> list[str]:
    """Every question accepted and typed right; the survey requires what the playbook requires (or the template's
    extra vars, ``given``, set it)."""
    problems = [f"{book.path}: {problem}" for problem in survey_spec_problems(survey)]
    if problems:
        return problems
    questions = {question["variable"]: question for question in survey["spec"]}
    for question in survey["spec"]:
        problems += question_problems(book, question, role_defaults)
    for variable in sorted(book.required):
        if variable not in questions:
            problems.append(f"{book.path} requires {variable}, which the survey does not ask")
        elif not questions[variable]["required"]:
            problems.append(f"{book.path} requires {variable}, which the survey leaves optional")
    role_required = {name for name, option in book.options.items() if option.get("required")}
    for variable, question in questions.items():
        fed = {role_variable for role_variable, _ in book.targets(variable)}
        one_of = any(variable in group for group in book.one_of)
        if question["required"] and "default" not in question and variable not in book.required and not fed & role_required and not one_of:
            problems.append(f"{book.path}: the survey requires {variable}, which the playbook does not")
    for group in book.one_of:
        if group & set(given):
            continue
        asked = sorted(v for v in questions if group & {v, *(role_variable for role_variable, _ in book.targets(v))})
        if asked and group <= {"service", "services", "service_group"} and not any(questions[v]["required"] for v in asked):
            problems.append(f"{book.path} needs one of {sorted(group)}; the survey leaves {', '.join(asked)} optional")
        if not any(group & {variable, *(role_variable for role_variable, _ in book.targets(variable))} for variable in questions):
            problems.append(f"{book.path} needs one of {sorted(group)}; the survey asks none")
    return problems


# -- templates, workflow, schedule -----------------------------------------------------------------
def templates_by_name(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {template["name"]: template for template in found["cutover_awx_job_templates"]}


def template_problems(template: dict[str, Any], found: dict[str, Any]) -> list[str]:
    name = template["name"]
    if not (REPO / template["playbook"]).is_file():
        return [f"{name}: playbook {template['playbook']} does not exist in the repository"]
    survey = found["surveys"].get(template["survey"])
    if survey is None:
        return [f"{name}: survey {template['survey']} has no file under extensions/awx/surveys"]
    book = load_playbook(template["playbook"])
    problems = [f"{name}: {problem}" for problem in survey_problems(book, survey, given=template.get("extra_vars", {}))]
    for variable in template.get("extra_vars", {}):
        if not book.accepts(variable):
            problems.append(f"{name}: extra var {variable} is not read by {template['playbook']}")
    if "cutover_aws_region" not in book.play_vars:
        problems.append(f"{name}: {template['playbook']} ignores cutover_aws_region, which every template sets")
    lease = next((option for key, option in book.options.items() if key.endswith("_lease_seconds")), None)
    if lease is not None:  # a template that changes a pair under the lock
        if template["timeout"] <= 0:
            problems.append(f"{name}: timeout {template['timeout']} s must be positive (a job that hangs must end)")
        if template["allow_simultaneous"]:
            problems.append(f"{name}: a template that changes a pair must not run simultaneously")
    return problems


def answer_problems_at_launch(template: dict[str, Any], found: dict[str, Any], supplied: dict[str, Any], where: str) -> list[str]:
    """Would the controller take these variables (a node's or a schedule's) for this template?"""
    questions = {question["variable"]: question for question in found["surveys"][template["survey"]]["spec"]}
    problems = []
    for variable, value in supplied.items():
        if variable in questions:
            problems += [f"{where}: {variable}: {problem}" for problem in answer_problems(questions[variable], value)]
        elif not template["ask_variables_on_launch"]:
            problems.append(f"{where}: {template['name']} neither asks {variable} nor accepts extra vars")
    return problems


def unanswered_at_launch(template: dict[str, Any], found: dict[str, Any], answered: set[str], where: str) -> list[str]:
    """Required questions of the template's survey that nothing answers and that have no default."""
    return [
        f"{where}: nothing answers the required question {question['variable']} of {template['name']}"
        for question in found["surveys"][template["survey"]]["spec"]
        if question["required"] and question["variable"] not in answered and question.get("default") in (None, "")
    ]


def workflow_problems(workflow: dict[str, Any], found: dict[str, Any]) -> list[str]:
    name = workflow["name"]
    templates = templates_by_name(found)
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    problems = [] if len(nodes) == len(workflow["workflow_nodes"]) else [f"{name}: node identifiers are not unique"]
    survey = found["surveys"].get(workflow["survey"])
    if survey is None:
        return [f"{name}: survey {workflow['survey']} has no file under extensions/awx/surveys"]
    problems += [f"{name}: {problem}" for problem in survey_spec_problems(survey)]
    answers = {question["variable"]: question for question in survey["spec"]}
    books = {}
    children: dict[str, list[str]] = {}
    for identifier, node in nodes.items():
        unified = node["unified_job_template"]
        if unified["type"] == "job_template":
            template = templates.get(unified["name"])
            if template is None:
                problems.append(f"{name}: node {identifier} runs {unified['name']}, which is not a job template")
                continue
            if not (REPO / template["playbook"]).is_file():
                continue  # named by the template's own problems
            books[identifier] = load_playbook(template["playbook"])
            where = f"{name}: node {identifier}"
            # The controller passes the workflow's variables to every node; a node's own extra_data
            # are prompts, which its template must accept.
            extra_data = node.get("extra_data", {})
            problems += answer_problems_at_launch(template, found, extra_data, where)
            always = {variable for variable, question in answers.items() if question["required"] or "default" in question}
            problems += unanswered_at_launch(template, found, always | set(extra_data), where)
        elif unified["type"] == "workflow_approval":
            if not isinstance(unified.get("timeout"), int) or unified["timeout"] <= 0:
                problems.append(f"{name}: approval {identifier} needs a timeout in seconds")
        else:
            problems.append(f"{name}: node {identifier} has an unexpected type {unified['type']}")
        related = node.get("related", {})
        children[identifier] = []
        for kind in ("success_nodes", "failure_nodes", "always_nodes"):
            for child in related.get(kind, []):
                if child["identifier"] not in nodes:
                    problems.append(f"{name}: node {identifier} leads to {child['identifier']}, which is no node")
                children[identifier].append(child["identifier"])
    roots = set(nodes) - {child for targets in children.values() for child in targets}
    if not roots:
        problems.append(f"{name}: no node starts the workflow")
    problems += [f"{name}: {problem}" for problem in cycle_problems(children)]
    for question in survey["spec"]:
        takers = [book for book in books.values() if book.accepts(question["variable"])]
        if not takers:
            problems.append(f"{name}: survey variable {question['variable']} is read by no node's playbook")
        for book in takers:
            problems += [f"{name}: {problem}" for problem in question_problems(book, question, role_defaults=False)]
    return problems


def cycle_problems(children: dict[str, list[str]]) -> list[str]:
    state: dict[str, str] = {}

    def visit(node: str) -> bool:
        if state.get(node) == "open":
            return True
        if state.get(node) == "done":
            return False
        state[node] = "open"
        looped = any(visit(child) for child in children.get(node, []))
        state[node] = "done"
        return looped

    return ["the nodes form a cycle"] if any(visit(node) for node in children) else []


RRULE = re.compile(r"DTSTART(;TZID=[\w/+-]+)?:(\d{8}T\d{6}Z?) RRULE:((?:[A-Z]+=[^;\s]+;?)+)")


def schedule_problems(schedule: dict[str, Any], found: dict[str, Any]) -> list[str]:
    name = schedule["name"]
    template = templates_by_name(found).get(schedule["unified_job_template"])
    if template is None:
        return [f"{name}: {schedule['unified_job_template']} is not a job template"]
    match = RRULE.fullmatch(schedule["rrule"])
    if not match:
        return [f"{name}: rrule {schedule['rrule']!r} is not 'DTSTART[;TZID=..]:YYYYMMDDTHHMMSS[Z] RRULE:KEY=VALUE;...'"]
    if match.group(1) is None and not match.group(2).endswith("Z"):
        return [f"{name}: DTSTART needs a time zone (TZID or Z)"]
    parts = dict(part.split("=", 1) for part in match.group(3).rstrip(";").split(";"))
    if "FREQ" not in parts:
        return [f"{name}: the RRULE has no FREQ"]
    try:
        rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
    except ValueError as error:
        return [f"{name}: rrule does not parse: {error}"]
    extra_data = schedule.get("extra_data", {})
    problems = answer_problems_at_launch(template, found, extra_data, name) + unanswered_at_launch(template, found, set(extra_data), name)
    force = schedule.get("extra_data", {}).get("force", "false")
    if template["playbook"] == "playbooks/teardown.yml" and str(force).lower() in ("true", "yes"):
        problems.append(f"{name}: a scheduled teardown must not force (standbys would go before their TTL)")
    return problems


def all_problems(found: dict[str, Any]) -> list[str]:
    problems = []
    for template in found["cutover_awx_job_templates"]:
        problems += template_problems(template, found)
    for workflow in found["cutover_awx_workflows"]:
        problems += workflow_problems(workflow, found)
    for schedule in found["cutover_awx_schedules"]:
        problems += schedule_problems(schedule, found)
    return problems


# -- tests: the definitions as they are ------------------------------------------------------------
@pytest.fixture
def found():
    return load_definitions()


def test_the_definitions_have_no_problem(found):
    assert all_problems(found) == []


def test_there_is_a_template_for_each_playbook_and_each_names_an_existing_playbook(found):
    templates = found["cutover_awx_job_templates"]
    assert {template["playbook"] for template in templates} == {f"playbooks/{path.name}" for path in (REPO / "playbooks").glob("*.yml")}
    assert len([t for t in templates if "job_slice_count" not in t]) == len(list((REPO / "playbooks").glob("*.yml")))
    assert {load_playbook(template["playbook"]).role for template in templates} == {"deploy", "rollback", "teardown", "status"}
    assert len(templates_by_name(found)) == len(templates)


def test_every_survey_file_is_used(found):
    used = {template["survey"] for template in found["cutover_awx_job_templates"]}
    used |= {workflow["survey"] for workflow in found["cutover_awx_workflows"]}
    assert used == set(found["surveys"])


def test_the_deploy_survey_asks_what_the_issue_names_with_the_roles_types(found):
    questions = {question["variable"]: question for question in found["surveys"]["deploy"]["spec"]}
    assert {"service", "image_id", "user_data", "version", "deploy_canary_weight"} <= set(questions)
    assert questions["service"]["required"] and questions["service"]["type"] == "text"
    assert questions["deploy_canary_weight"]["type"] == "integer"
    assert questions["deploy_canary_weight"]["default"] == role_options("deploy")["deploy_canary_weight"]["default"]
    # Optional version questions carry no default: an API launch that leaves them out sets nothing.
    assert all("default" not in questions[name] for name in ("image_id", "instance_type", "user_data", "version"))


def test_the_rollback_survey_offers_exactly_the_roles_colours(found):
    [question] = [q for q in found["surveys"]["rollback"]["spec"] if q["variable"] == "to"]
    assert question["type"] == "multiplechoice"
    assert question["choices"] == role_options("rollback")["rollback_to"]["choices"]
    assert question["default"] == "previous"


def test_the_teardown_survey_asks_services_and_force(found):
    questions = {question["variable"]: question for question in found["surveys"]["teardown"]["spec"]}
    assert set(questions) == {"services", "platform", "namespace", "force", "takeover"}
    assert questions["services"]["required"] and not questions["takeover"]["required"]
    assert questions["force"]["choices"] == ["false", "true"] and questions["force"]["default"] == "false"


@pytest.mark.parametrize("survey", ["deploy", "rollback", "teardown", "status"])
def test_one_survey_serves_both_platforms(found, survey):
    """platform (the role's choices, aws by default, so a launch that leaves it out is what it always was) and an
    optional namespace; deploy asks the container image too, optional as the AMI is."""
    questions = {question["variable"]: question for question in found["surveys"][survey]["spec"]}
    role = {"status": "status", "teardown": "teardown", "rollback": "rollback"}.get(survey, "deploy")
    assert questions["platform"]["type"] == "multiplechoice" and questions["platform"]["default"] == "aws"
    assert questions["platform"]["choices"] == role_options(role)[f"{role}_platform"]["choices"]
    assert questions["namespace"]["type"] == "text" and not questions["namespace"]["required"]
    if survey == "deploy":
        assert questions["image"]["type"] == "text" and not questions["image"]["required"]


def test_the_workflow_runs_a_canary_then_promotes_or_rolls_back_after_approval(found):
    [workflow] = found["cutover_awx_workflows"]
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    [root] = set(nodes) - {child["identifier"] for node in nodes.values() for links in node.get("related", {}).values() for child in links}
    canary = nodes[root]
    assert canary["unified_job_template"]["name"] == "cutover-deploy"
    assert canary["extra_data"] == {"phase": "canary"}
    assert role_options("deploy")["deploy_phase"]["choices"] == ["full", "canary", "promote"]
    assert "failure_nodes" not in canary.get("related", {})  # the deploy role switches back itself
    [approve] = canary["related"]["success_nodes"]
    approval = nodes[approve["identifier"]]
    assert approval["unified_job_template"]["type"] == "workflow_approval"
    [denied] = approval["related"]["failure_nodes"]
    assert nodes[denied["identifier"]]["unified_job_template"]["name"] == "cutover-rollback"
    assert nodes[denied["identifier"]]["extra_data"] == {"to": "previous"}
    [approved] = approval["related"]["success_nodes"]
    promote = nodes[approved["identifier"]]["unified_job_template"]["name"]
    assert promote == "cutover-promote"
    [template] = [t for t in found["cutover_awx_job_templates"] if t["name"] == promote]
    [play] = read_yaml(REPO / template["playbook"])
    assert play["roles"][0]["role"] == "cutover.bluegreen.deploy" and play["roles"][0]["deploy_phase"] == "promote"
    # a canary phase needs a share of traffic: the survey cannot answer 0
    release = {question["variable"]: question for question in found["surveys"][workflow["survey"]]["spec"]}
    assert release["deploy_canary_weight"]["min"] >= 1 and release["deploy_canary_weight"]["default"] > 0
    assert release["deploy_canary_weight"]["required"]


def test_the_teardown_schedule_runs_hourly_and_never_forces(found):
    [schedule] = found["cutover_awx_schedules"]
    assert schedule["unified_job_template"] == "cutover-teardown"
    rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    first = rule.after(start)
    assert rule.after(first) - first == timedelta(hours=1)
    assert schedule["extra_data"]["force"] == "false"


def test_register_passes_the_syntax_check():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", str(AWX / "register.yml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- tests: broken copies are caught ---------------------------------------------------------------
def broken(found, change) -> list[str]:
    copied = copy.deepcopy(found)
    change(copied)
    return all_problems(copied)


def template(found, name):
    return templates_by_name(found)[name]


def question(found, survey, variable):
    return next(q for q in found["surveys"][survey]["spec"] if q["variable"] == variable)


def test_a_template_naming_a_missing_playbook_is_caught(found):
    problems = broken(found, lambda f: template(f, "cutover-deploy").update(playbook="playbooks/release.yml"))
    assert problems[0] == "cutover-deploy: playbook playbooks/release.yml does not exist in the repository"
    assert "cutover-release: survey variable image_id is read by no node's playbook" in problems


def test_a_survey_variable_no_role_accepts_is_caught(found):
    problems = broken(found, lambda f: question(f, "deploy", "image_id").update(variable="ami"))
    assert "cutover-deploy: playbooks/deploy.yml: survey variable ami is neither an extra var the playbook passes" in problems[0]
    problems = broken(found, lambda f: question(f, "status", "status_deployments").update(variable="status_history"))
    assert any("survey variable status_history is neither" in problem for problem in problems)


def test_a_survey_type_that_does_not_match_the_spec_is_caught(found):
    def text_weight(f):
        question(f, "deploy", "deploy_canary_weight").update(type="text", default="0", min=0, max=3)

    assert any(
        "deploy_canary_weight -> deploy_canary_weight: a question of type text cannot feed int" in p for p in broken(found, text_weight)
    )

    def integer_ttl(f):
        question(f, "deploy", "deploy_standby_ttl").update(type="integer", default=86400, min=0, max=10**7)

    assert any("a question of type integer cannot feed str" in p for p in broken(found, integer_ttl))


def test_a_choice_the_role_refuses_is_caught(found):
    def purple(f):
        question(f, "rollback", "to")["choices"].append("purple")

    assert any("choices ['purple'] are not among the role's choices" in p for p in broken(found, purple))


def test_a_survey_default_that_drifts_from_the_role_is_caught(found):
    problems = broken(found, lambda f: question(f, "status", "status_deployments").update(default=7))
    assert any("default 7 differs from the role's 5" in p for p in problems)


def test_survey_requirements_must_match_the_playbook(found):
    problems = broken(found, lambda f: question(f, "rollback", "service").update(required=False))
    assert any("needs one of ['service', 'service_group', 'services']; the survey leaves service optional" in p for p in problems)
    problems = broken(found, lambda f: template(f, "cutover-fleet-deploy").update(extra_vars={}))
    assert any("needs one of ['service', 'service_group', 'services']; the survey asks none" in p for p in problems)
    problems = broken(found, lambda f: question(f, "teardown", "services").update(required=False))
    assert any("requires services, which the survey leaves optional" in p for p in problems)
    problems = broken(found, lambda f: question(f, "deploy", "image_id").update(required=True))
    assert any("the survey requires image_id, which the playbook does not" in p for p in problems)

    def drop_versions(f):
        f["surveys"]["deploy"]["spec"] = [
            q for q in f["surveys"]["deploy"]["spec"] if q["variable"] not in ("image_id", "user_data", "instance_type")
        ]

    problems = broken(found, drop_versions)
    assert any("needs one of ['deploy_image_id', 'deploy_instance_type', 'deploy_user_data']; the survey asks none" in p for p in problems)


def test_the_controllers_survey_rules_are_enforced(found):
    problems = broken(found, lambda f: question(f, "rollback", "to").update(default="purple"))
    assert any("default 'purple' is not one of the choices" in p for p in problems)
    problems = broken(found, lambda f: question(f, "deploy", "deploy_canary_weight").update(default="10"))
    assert any("default '10' is not an answer of type integer" in p for p in problems)
    problems = broken(found, lambda f: question(f, "deploy", "deploy_canary_weight").update(default=80))
    assert any("80 is not within 0..50" in p for p in problems)


def test_a_template_without_a_timeout_is_caught(found):
    problems = broken(found, lambda f: template(f, "cutover-deploy").update(timeout=0))
    assert problems == ["cutover-deploy: timeout 0 s must be positive (a job that hangs must end)"]
    problems = broken(found, lambda f: template(f, "cutover-rollback").update(allow_simultaneous=True))
    assert problems == ["cutover-rollback: a template that changes a pair must not run simultaneously"]


def test_a_workflow_naming_a_missing_template_is_caught(found):
    def rename(f):
        f["cutover_awx_workflows"][0]["workflow_nodes"][0]["unified_job_template"]["name"] = "cutover-release-v1"

    assert "cutover-release: node canary runs cutover-release-v1, which is not a job template" in broken(found, rename)


def test_a_workflow_node_with_a_bad_answer_or_a_dangling_link_is_caught(found):
    def bad_colour(f):
        f["cutover_awx_workflows"][0]["workflow_nodes"][3]["extra_data"] = {"to": "purple"}

    assert any("node roll-back: to: 'purple' is not one of" in p for p in broken(found, bad_colour))

    def dangling(f):
        f["cutover_awx_workflows"][0]["workflow_nodes"][0]["related"]["success_nodes"] = [{"identifier": "confirm"}]

    assert any("node canary leads to confirm, which is no node" in p for p in broken(found, dangling))

    def loop(f):
        f["cutover_awx_workflows"][0]["workflow_nodes"][2]["related"] = {"success_nodes": [{"identifier": "canary"}]}

    assert any("no node starts the workflow" in p or "cycle" in p for p in broken(found, loop))


def test_a_workflow_survey_variable_no_node_reads_is_caught(found):
    def extra(f):
        f["surveys"]["release"]["spec"].append({"question_name": "Ticket", "variable": "ticket", "type": "text", "required": False})

    assert "cutover-release: survey variable ticket is read by no node's playbook" in broken(found, extra)


def test_a_schedule_that_is_malformed_forces_or_misses_an_answer_is_caught(found):
    assert any("is not 'DTSTART" in p for p in broken(found, lambda f: f["cutover_awx_schedules"][0].update(rrule="FREQ=HOURLY")))
    assert any(
        "DTSTART needs a time zone" in p
        for p in broken(found, lambda f: f["cutover_awx_schedules"][0].update(rrule="DTSTART:20250101T001500 RRULE:FREQ=HOURLY"))
    )
    assert any(
        "rrule does not parse" in p
        for p in broken(found, lambda f: f["cutover_awx_schedules"][0].update(rrule="DTSTART:20250101T001500Z RRULE:FREQ=SOMETIMES"))
    )
    assert "cutover-teardown-hourly: a scheduled teardown must not force (standbys would go before their TTL)" in broken(
        found, lambda f: f["cutover_awx_schedules"][0]["extra_data"].update(force="true")
    )
    assert "cutover-teardown-hourly: nothing answers the required question services of cutover-teardown" in broken(
        found, lambda f: f["cutover_awx_schedules"][0]["extra_data"].pop("services")
    )
    assert "cutover-teardown-hourly: ghost is not a job template" in broken(
        found, lambda f: f["cutover_awx_schedules"][0].update(unified_job_template="ghost")
    )


# -- the execution environment ---------------------------------------------------------------------
def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


def bundled_version(namespace: str, name: str) -> str:
    import ansible_collections

    for base in ansible_collections.__path__:
        manifest = Path(base) / namespace / name / "MANIFEST.json"
        if manifest.is_file():
            return yaml.safe_load(manifest.read_text())["collection_info"]["version"]
    raise AssertionError(f"{namespace}.{name} is not bundled")


def test_the_execution_environment_definition_is_version_3_with_its_files():
    definition = read_yaml(EE / "execution-environment.yml")
    assert definition["version"] == 3
    assert definition["images"]["base_image"]["name"]
    dependencies = definition["dependencies"]
    assert {"ansible_core", "ansible_runner", "python", "galaxy"} <= set(dependencies)
    for key in ("python", "galaxy"):
        assert (EE / dependencies[key]).is_file()
    repo = pins(REPO / "requirements.txt")
    assert dependencies["ansible_core"]["package_pip"] == f"ansible-core=={repo['ansible-core']}"
    assert dependencies["ansible_runner"]["package_pip"] == f"ansible-runner=={repo['ansible-runner']}"
    python = pins(EE / dependencies["python"])
    assert {"boto3", "botocore"} <= set(python)
    assert all(python[name] == repo[name] for name in python)


def test_the_execution_environment_installs_amazon_aws_and_this_collection():
    definition = read_yaml(EE / "execution-environment.yml")
    collections = {entry["name"]: entry for entry in read_yaml(EE / definition["dependencies"]["galaxy"])["collections"]}
    amazon = SpecifierSet(collections["amazon.aws"]["version"])
    assert Version(bundled_version("amazon", "aws")) in amazon  # the version the tests run with
    assert Version(bundled_version("amazon", "aws")) in SpecifierSet(read_yaml(REPO / "galaxy.yml")["dependencies"]["amazon.aws"])
    [own] = [entry for name, entry in collections.items() if entry.get("type") in ("file", "dir", "git")]
    assert own["type"] == "file" and own["name"].endswith("cutover-bluegreen.tar.gz")
    # additional_build_files puts the tarball where ansible-galaxy, run in the build directory, looks.
    [build_file] = definition["additional_build_files"]
    assert f"{build_file['dest']}/{Path(build_file['src']).name}" == own["name"]
    script = (EE / "build").read_text()
    assert "ansible-galaxy collection build" in script and Path(build_file["src"]).name in script
    galaxy = read_yaml(REPO / "galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"]) == ("cutover", "bluegreen")
