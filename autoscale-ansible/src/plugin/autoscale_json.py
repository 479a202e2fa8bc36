# A stdout callback for ansible-playbook that prints one JSON document, on one line, when the run ends.
#
# autoscale writes this file into a private temporary directory for each run and selects it with
# ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_STDOUT_CALLBACK=autoscale_json. ansible-core ships no JSON stdout
# callback of its own (the `json` one lives in the ansible.posix collection), and a scaler must not depend on
# a collection being installed. The document has the same shape as ansible.posix.json, so autoscale parses
# either:
#
#   {"plays": [{"play": {"name", "id"}, "tasks": [{"task": {"name", "id"}, "hosts": {HOST: RESULT}}]}],
#    "stats": {HOST: {"ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored"}},
#    "custom_stats": {HOST: {...}}, "global_custom_stats": {...}}
#
# RESULT is the module's result with "action" added, "failed"/"skipped" set by the event that reported it, and
# "ignored" set on a failure that ignore_errors let pass. Results hidden by no_log arrive here already censored.
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: autoscale_json
    short_description: One JSON document for autoscale
    description:
        - Prints the results of a playbook run as a single line of JSON when the run ends.
    type: stdout
'''


def _part(result, name):
    # ansible-core 2.19 made the parts of a task result public (result.result, .host, .task) and deprecated
    # the underscored names that earlier versions only have.
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, '_' + name)


def _name(value):
    get_name = getattr(value, 'get_name', None)
    return get_name() if callable(get_name) else str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'autoscale_json'

    def __init__(self, display=None):
        super().__init__(display)
        self._plays = []
        self._tasks = {}

    def v2_playbook_on_play_start(self, play):
        self._plays.append({'play': {'name': play.get_name(), 'id': str(play._uuid)}, 'tasks': []})
        self._tasks = {}

    def _task_entry(self, task):
        if not self._plays:
            # No play start was seen (no result comes before one in practice): keep the result anyway.
            self._plays.append({'play': {'name': '', 'id': ''}, 'tasks': []})
        key = str(task._uuid)
        entry = self._tasks.get(key)
        if entry is None:
            entry = {'task': {'name': task.get_name(), 'id': key}, 'hosts': {}}
            self._tasks[key] = entry
            self._plays[-1]['tasks'].append(entry)
        return entry

    def _record(self, result, **status):
        task = _part(result, 'task')
        data = dict(_part(result, 'result'))
        data.update(status)
        data['action'] = task.action
        self._task_entry(task)['hosts'][_part(result, 'host').get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._record(result, failed=True, ignored=True)
        else:
            self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed.keys())}
        custom = {_name(host): values for host, values in (stats.custom or {}).items()}
        output = {
            'plays': self._plays,
            'stats': summary,
            'custom_stats': custom,
            'global_custom_stats': custom.pop('_run', {}),
        }
        # default=str: a value json cannot encode (a date, a tagged type) must not lose the whole report.
        self._display.display(json.dumps(output, sort_keys=True, default=str))
