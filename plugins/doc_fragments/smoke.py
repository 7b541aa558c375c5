# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a smoke test judges and repeats its request (smoke_test at a URL, k8s_smoke_test through the preview
    # Service); checked by module_utils/smoke.py's validate_request.
    DOCUMENTATION = r"""
options:
  status:
    description:
      - The HTTP statuses that pass (100 to 599).
    type: list
    elements: int
    default: [200]
  expect:
    description:
      - A text the body of a passing answer must contain (its version, say).
    type: str
  retries:
    description:
      - How many more times to ask after a failing answer (0 to 1000).
    type: int
    default: 10
  delay:
    description:
      - Seconds between two requests (0 to 300).
    type: float
    default: 1
"""
