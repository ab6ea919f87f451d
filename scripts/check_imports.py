"""Import cycles among the project's modules, lazy (in-function) imports included.

  .venv/bin/python scripts/check_imports.py [--json] [--root DIR --package NAME=FOLDER ...]

Reads every module of mvae_tf (export/ as mvae_tf.export) and edge_demo with `ast` (no
import runs), takes every `import` and `from ... import` anywhere in a module (at the top,
in functions, under `if`), resolves each to a module of the project (`from a.b import c`
is a.b.c when that is a module, else a.b; importing a package's module also runs the
package's __init__, counted as an edge to it), and prints each cycle: a strongly
connected group of modules, with one import path around it. Exit status 1 when there
is a cycle. Also checks STAGES: the folders are the data's path, and a module imports
only from its own stage and those before it (exit status 1 otherwise).
"""

import argparse
import ast
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where each top-level package's modules live (package name -> folder).
PACKAGES = {'mvae_tf': 'mvae_tf', 'mvae_tf.export': 'export', 'edge_demo': 'edge_demo'}

# The data's path (issue 14): each stage imports only from itself and the stages before
# it (module name prefixes, in order). Exempt: the package's own __init__ (`mvae_tf`: the
# public names, imported lazily) and edge_demo, the TF-free runtime that every stage may
# share and that imports nothing of mvae_tf.
STAGES = (
    ('shared', ('mvae_tf.errors', 'mvae_tf.atomic', 'mvae_tf.quiet', 'mvae_tf.workers')),
    ('data', ('mvae_tf.configs', 'mvae_tf.hparams', 'mvae_tf.data')),
    ('model', ('mvae_tf.model',)),
    ('training', ('mvae_tf.training',)),
    ('store', ('mvae_tf.store', 'mvae_tf.pretrained')),
    ('evaluation', ('mvae_tf.evaluation',)),
    ('generation', ('mvae_tf.generation',)),
    ('export', ('mvae_tf.export',)),
    ('cli', ('mvae_tf.cli', 'mvae_tf.__main__')),
)
STANDALONE = ('edge_demo',)


def project_modules(root=ROOT, packages=None):
  """{module name: file path} of every .py file of the packages (tests excluded)."""
  modules = {}
  for package, folder in (packages or PACKAGES).items():
    base = os.path.join(root, folder)
    for directory, dirs, files in os.walk(base):
      # Sub-packages only (a folder with __init__.py): not tests, not data folders.
      dirs[:] = sorted(d for d in dirs if d != 'tests'
                       and os.path.isfile(os.path.join(directory, d, '__init__.py')))
      rel = os.path.relpath(directory, base)
      prefix = package if rel == '.' else package + '.' + rel.replace(os.sep, '.')
      for name in sorted(files):
        if name.endswith('.py'):
          module = prefix if name == '__init__.py' else prefix + '.' + name[:-3]
          modules[module] = os.path.join(directory, name)
  return modules


def _resolve(name, modules):
  """The project module `name` names, or its nearest enclosing one; None if outside."""
  while name:
    if name in modules:
      return name
    name = name.rpartition('.')[0]
  return None


def imports_of(module, path, modules):
  """{imported project module: first line number} for one module's file."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  is_package = path.endswith('__init__.py')
  found = {}

  def add(target, line):
    target = _resolve(target, modules)
    if target and target != module:
      found.setdefault(target, line)
      # Importing a.b.c runs a and a.b first: their __init__ modules are imported too.
      parent = target.rpartition('.')[0]
      while parent:
        if parent in modules and parent != module and not module.startswith(parent + '.'):
          found.setdefault(parent, line)
        parent = parent.rpartition('.')[0]

  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        add(alias.name, node.lineno)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module if is_package else module.rpartition('.')[0]
        for _ in range(node.level - 1):
          base = base.rpartition('.')[0]
        source = base + ('.' + node.module if node.module else '')
      else:
        source = node.module
      for alias in node.names:
        full = source + '.' + alias.name
        add(full if full in modules else source, node.lineno)
  return found


def graph(root=ROOT, packages=None):
  modules = project_modules(root, packages)
  return {m: imports_of(m, p, modules) for m, p in modules.items()}


def cycles(edges):
  """Strongly connected groups of more than one module (Tarjan), each sorted; sorted."""
  index, low, stack, on_stack, groups = {}, {}, [], set(), []
  counter = [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      group = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        group.append(w)
        if w == v:
          break
      if len(group) > 1:
        groups.append(sorted(group))

  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, 10000))
  try:
    for v in sorted(edges):
      if v not in index:
        visit(v)
  finally:
    sys.setrecursionlimit(limit)
  return sorted(groups)


def path_around(group, edges):
  """One import path from the group's first module back to it, within the group:
  [(module, imported module, line), ...]."""
  start, members = group[0], set(group)
  previous, queue = {start: None}, [start]
  while queue:
    v = queue.pop(0)
    for w in sorted(edges[v]):
      if w not in members:
        continue
      if w == start:
        steps, node = [(v, w, edges[v][w])], v
        while previous[node] is not None:
          p = previous[node]
          steps.append((p, node, edges[p][node]))
          node = p
        return steps[::-1]
      if w not in previous:
        previous[w] = v
        queue.append(w)
  return []


def _stage(module, stages):
  for i, (_, prefixes) in enumerate(stages):
    if any(module == p or module.startswith(p + '.') for p in prefixes):
      return i
  return None


def stage_violations(edges, stages=STAGES, standalone=STANDALONE, root='mvae_tf'):
  """[(module, its stage, imported module, its stage, line)] for every import of a later
  stage, of a module in no stage, or (from a standalone package) of the project."""
  names = [name for name, _ in stages]
  found = []
  for module in sorted(edges):
    if module == root:
      continue
    alone = any(module == p or module.startswith(p + '.') for p in standalone)
    here = None if alone else _stage(module, stages)
    for target, line in sorted(edges[module].items()):
      target_alone = any(target == p or target.startswith(p + '.') for p in standalone)
      if alone:
        if not target_alone:
          found.append((module, 'standalone', target, 'project', line))
        continue
      if target == root or target_alone:
        continue
      there = _stage(target, stages)
      if here is None or there is None or there > here:
        found.append((module, names[here] if here is not None else 'no stage', target,
                      names[there] if there is not None else 'no stage', line))
  return found


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--json', action='store_true')
  parser.add_argument('--root', default=ROOT, help='the project folder (default: this one)')
  parser.add_argument('--package', action='append', metavar='NAME=FOLDER',
                      help='a package to read and its folder under --root (default: %s)' %
                           ', '.join('%s=%s' % kv for kv in PACKAGES.items()))
  args = parser.parse_args(argv)
  packages = dict(p.split('=', 1) for p in args.package) if args.package else None
  edges = graph(args.root, packages)
  found = cycles(edges)
  # The stage order is this project's: checked when the script reads its own packages.
  late = stage_violations(edges) if packages is None else []
  if args.json:
    print(json.dumps([dict(modules=g, path=path_around(g, edges)) for g in found], indent=1))
  else:
    for g in found:
      print('cycle: ' + ' -> '.join('%s (line %d)' % (a, line)
                                    for a, _, line in path_around(g, edges)) + ' -> ' + g[0])
    for module, here, target, there, line in late:
      print('stage: %s (%s) imports %s (%s), line %d' % (module, here, target, there, line))
    print('%d module(s), %d import cycle(s), %d import(s) against the stage order' % (
        len(edges), len(found), len(late)))
  return 1 if found or late else 0


if __name__ == '__main__':
  sys.exit(main())
