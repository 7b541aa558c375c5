# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A connection to the controller that is not ``local`` by name: the collection's modules run as modules over it.

The actions of the collection's AWS modules run the module's code in-process on a ``local`` connection only;
tests compare that with a module run over this one (the same machine, the same environment).
"""

from __future__ import annotations

from ansible.plugins.connection.local import DOCUMENTATION as LOCAL_DOCUMENTATION
from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = LOCAL_DOCUMENTATION.replace("name: local", "name: module_local", 1)


class Connection(LocalConnection):
    transport = "module_local"
