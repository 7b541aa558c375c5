"""botocore's data read once per controller process and inherited by the workers forked from it."""

from __future__ import annotations

import json
import os

import boto3
import botocore.loaders
import botocore.session
import pytest
from ansible_collections.cutover.bluegreen.plugins.plugin_utils import botocore_data, in_process  # noqa: F401 (warms)


@pytest.fixture
def reads(monkeypatch):
    """The data files botocore reads from disk from now on."""
    read = []
    load_file = botocore.loaders.JSONFileLoader.load_file

    def counted(self, file_path):
        read.append(os.path.basename(file_path))
        return load_file(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    return read


def session(**kwargs):
    return boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1", **kwargs)


def test_importing_the_action_plugins_shares_one_loader_per_data_path(monkeypatch):
    first, second = session(), session()
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    # boto3 appends its data path for every session; the shared loader's paths do not grow with the sessions
    paths = list(loader.search_paths)
    for _ in range(5):
        session()
    assert loader.search_paths == paths and "boto3" in paths[-1]
    # another AWS_DATA_PATH is another loader, with that path first
    monkeypatch.setenv("AWS_DATA_PATH", "/nonexistent/cutover-data")
    other = session()._session.get_component("data_loader")
    assert other is not loader and other.search_paths[0] == "/nonexistent/cutover-data"


def test_clients_of_the_collections_services_read_no_file_after_the_warm_up(reads):
    for service in botocore_data.SERVICES:
        client = session().client(service)
        assert client.meta.service_model.service_name == service
    assert reads == []
    # a service not warmed is read once, then shared too
    session().client("sts")
    assert any(name.startswith("service-2") for name in reads)
    del reads[:]
    session().client("sts")
    assert reads == []


def test_a_forked_worker_inherits_the_warm_data(reads):
    """What an Ansible worker is: a fork of the process that imported the action plugins."""
    ready, done = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.close(ready)
            before = len(reads)
            for service in botocore_data.SERVICES:
                session().client(service)
            os.write(done, json.dumps(reads[before:]).encode())
        finally:
            os._exit(0)
    os.close(done)
    with os.fdopen(ready) as pipe:
        read_in_worker = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert read_in_worker == []


def test_sessions_share_only_the_data():
    first = session()
    other = boto3.session.Session(aws_access_key_id="c", aws_secret_access_key="d", region_name="us-west-2")
    assert first._session.get_component("data_loader") is other._session.get_component("data_loader")
    assert first.client("elbv2").meta.region_name == "eu-west-1"
    client = other.client("elbv2")
    assert client.meta.region_name == "us-west-2"
    assert client._request_signer._credentials.access_key == "c"
    assert first._session.get_component("event_emitter") is not other._session.get_component("event_emitter")
