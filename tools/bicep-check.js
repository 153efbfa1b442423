#!/usr/bin/env node
// Syntax check for the Bicep files in infra/, with tree-sitter-bicep (no
// Bicep compiler runs on the development machines or in CI).
//
//   node tools/bicep-check.js [--json] FILE_OR_DIR...
//
// Every *.bicep file under the given paths is parsed; each syntax error is
// reported as file:line:col and the exit status is 1 when there is any.
// With --json the report is one JSON document on stdout instead:
//   {"files": [{"file": ..., "errors": [{"line", "column", "message"}],
//               "variables": {"<var name>": <value>},
//               "params": {"<param name>": {"default": <value>,
//                          "decorators": {"<name>": [<argument value>...]}}},
//               "outputs": {"<output name>": <value>}}]}
// where a value is its literal JSON value (objects, arrays, strings without
// interpolation, numbers, booleans, null) and any other expression is
// {"$expr": "<source text>"}. The deployment tests read the app settings,
// the Service Bus queues, parameter bounds and module outputs from there.
'use strict';

const fs = require('fs');
const path = require('path');
const Parser = require('tree-sitter');
const Bicep = require('tree-sitter-bicep');

function bicepFiles(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return [p];
  const out = [];
  for (const e of fs.readdirSync(p, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(p, e.name);
    if (e.isDirectory()) out.push(...bicepFiles(full));
    else if (e.name.endsWith('.bicep')) out.push(full);
  }
  return out;
}

function syntaxErrors(node, errors) {
  if (node.type === 'ERROR' || node.isMissing) {
    const text = node.text.split('\n')[0].slice(0, 60);
    errors.push({
      line: node.startPosition.row + 1,
      column: node.startPosition.column + 1,
      message: node.isMissing ? `missing ${node.type}` : `unexpected ${JSON.stringify(text)}`,
    });
    if (node.type === 'ERROR') return;
  }
  if (!node.hasError && !node.isMissing) return;
  for (const child of node.children) syntaxErrors(child, errors);
}

// literal turns an expression node into its JSON value where it is a
// literal, and into {"$expr": text} otherwise.
function literal(node) {
  switch (node.type) {
    case 'object': {
      const out = {};
      for (const prop of node.namedChildren) {
        if (prop.type !== 'object_property') continue;
        const [key, value] = prop.namedChildren;
        const k = key.type === 'string' ? stringValue(key) : key.text;
        out[typeof k === 'string' ? k : key.text] = value ? literal(value) : null;
      }
      return out;
    }
    case 'array':
      return node.namedChildren.filter((c) => c.type !== 'comment').map(literal);
    case 'string':
      return stringValue(node);
    case 'number':
      return Number(node.text);
    case 'boolean':
      return node.text === 'true';
    case 'null':
      return null;
    default:
      return { $expr: node.text };
  }
}

// stringValue is the text of a string without interpolation, else {"$expr"}.
function stringValue(node) {
  if (node.namedChildren.some((c) => c.type !== 'string_content' && c.type !== 'escape_sequence')) {
    return { $expr: node.text };
  }
  const raw = node.text;
  if (raw.startsWith("'''")) return raw.slice(3, -3);
  return raw.slice(1, -1).replace(/\\(.)/g, (_, c) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c);
}

function variables(root) {
  const out = {};
  for (const decl of root.namedChildren) {
    if (decl.type !== 'variable_declaration') continue;
    const named = decl.namedChildren;
    const name = named.find((c) => c.type === 'identifier');
    const value = named[named.length - 1];
    if (name && value && value !== name) out[name.text] = literal(value);
  }
  return out;
}

// params reads each parameter's default and decorators (the decorators
// node is the declaration's preceding sibling).
function params(root) {
  const out = {};
  let decorators = null;
  for (const decl of root.namedChildren) {
    if (decl.type === 'decorators') {
      decorators = decl;
      continue;
    }
    if (decl.type === 'comment') continue;
    if (decl.type === 'parameter_declaration') {
      const named = decl.namedChildren;
      const name = named.find((c) => c.type === 'identifier');
      const last = named[named.length - 1];
      const p = { default: last && last !== name && last.type !== 'type' ? literal(last) : undefined, decorators: {} };
      for (const d of decorators ? decorators.namedChildren : []) {
        const call = d.namedChildren.find((c) => c.type === 'call_expression');
        if (!call) continue;
        const fn = call.childForFieldName('function');
        const args = call.namedChildren.find((c) => c.type === 'arguments');
        p.decorators[fn ? fn.text : call.text] = args ? args.namedChildren.filter((c) => c.type !== 'comment').map(literal) : [];
      }
      if (name) out[name.text] = p;
    }
    decorators = null;
  }
  return out;
}

function outputs(root) {
  const out = {};
  for (const decl of root.namedChildren) {
    if (decl.type !== 'output_declaration') continue;
    const named = decl.namedChildren;
    const name = named.find((c) => c.type === 'identifier');
    const value = named[named.length - 1];
    if (name && value && value !== name) out[name.text] = literal(value);
  }
  return out;
}

function main(argv) {
  const json = argv.includes('--json');
  const paths = argv.filter((a) => a !== '--json');
  if (paths.length === 0) {
    process.stderr.write('usage: node tools/bicep-check.js [--json] FILE_OR_DIR...\n');
    return 2;
  }
  const parser = new Parser();
  parser.setLanguage(Bicep);
  const report = { files: [] };
  let failed = false;
  for (const file of paths.flatMap(bicepFiles)) {
    const tree = parser.parse(fs.readFileSync(file, 'utf8'));
    const errors = [];
    syntaxErrors(tree.rootNode, errors);
    if (errors.length > 0) failed = true;
    report.files.push(
      json
        ? { file, errors, variables: variables(tree.rootNode), params: params(tree.rootNode), outputs: outputs(tree.rootNode) }
        : { file, errors },
    );
  }
  if (report.files.length === 0) {
    process.stderr.write(`bicep-check: no .bicep files under ${paths.join(' ')}\n`);
    return 2;
  }
  if (json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    for (const f of report.files) {
      for (const e of f.errors) process.stderr.write(`${f.file}:${e.line}:${e.column}: syntax error: ${e.message}\n`);
    }
    if (!failed) process.stdout.write(`bicep-check: ${report.files.length} files parsed without syntax errors\n`);
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
