# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""botocore's data (service models, endpoint rules, retry rules) read once per controller, not once per client.

amazon.aws makes a new boto3 session for every client (``_boto3_conn``) and takes none from outside, and
every new botocore session makes a new ``Loader``, which reads and parses the service's JSON again: about
0.06 s of CPU for a client here, 0.3 s for the clients of a deploy's lock, rollout and switch, for every task
of every service of a run. The modules run in-process (:mod:`in_process`) in workers that Ansible forks from
one controller process. So, in that process only:

* botocore's ``create_loader`` (the factory every new session calls for its ``data_loader``) hands out one
  ``Loader`` per data path (``AWS_DATA_PATH``) instead of a new one per session. A ``Loader`` caches what it
  has read and never changes it (botocore returns the same objects to every caller of one session already), so
  sessions may share one, as ``Session.register_component('data_loader', ...)`` lets a caller do by hand;
* the loader reads the models of the services the collection calls before the first worker is forked, so
  every worker inherits them parsed (:func:`warm`).

A client's creation then takes about 5 ms. Nothing else of the session is shared: credentials, region,
configuration, event handlers and connections stay each client's, as amazon.aws makes them. A module run as a
module (over another connection) is not affected.
"""

from __future__ import annotations

try:
    import boto3
    import botocore.loaders
    import botocore.session
    from botocore.exceptions import BotoCoreError
except ImportError:  # the modules then run as modules (see in_process.InProcessModuleAction.in_process)
    botocore = None

# What the collection's modules make clients for.
SERVICES = ("autoscaling", "cloudwatch", "dynamodb", "ec2", "elbv2", "ssm")


def share_loaders():
    """Make every new botocore session of this process use one ``Loader`` per data path. Idempotent."""
    if botocore is None or getattr(botocore.session.create_loader, "shared_per_data_path", False):
        return
    create = botocore.loaders.create_loader
    loaders = {}

    def create_loader(search_path_string=None):
        if search_path_string not in loaders:
            loaders[search_path_string] = create(search_path_string)
        loader = loaders[search_path_string]
        # boto3 appends its own data path to the loader's for every session: keep each path once (before boto3's
        # append, so the list holds at most that one repeat and does not grow)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
        return loader

    create_loader.shared_per_data_path = True
    # botocore.session looks the factory up in its own namespace when a session registers its components
    botocore.session.create_loader = create_loader


def warm(services=SERVICES):
    """Read the data a client of each service needs into the shared loader (no credentials looked up, no request
    sent). Best effort: a service this botocore lacks is read when a module asks for it, and fails there."""
    if botocore is None:
        return
    share_loaders()
    # keys given, so that no credential is looked up (the instance metadata service may be far, or absent)
    session = boto3.session.Session(aws_access_key_id="warm", aws_secret_access_key="warm", region_name="us-east-1")  # noqa: S106
    for service in services:
        try:
            session.client(service)
        except BotoCoreError:
            pass
