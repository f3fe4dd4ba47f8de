/**
 * The longest functions in a tree, measured with the TypeScript compiler: every function, method, arrow
 * function and accessor with its line count (first to last line of its body, blank lines included).
 * `npx tsx scripts/longest-functions.mts [dir=src] [count=10] [--max=N]`: prints the longest `count`;
 * with `--max=N` exits 1 when any function is over N lines (a check for CI or a review).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export interface FunctionLength {
  file: string;
  line: number;
  name: string;
  lines: number;
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return files(path);
    return /\.m?ts$/.test(entry) && !entry.endsWith('.d.ts') ? [path] : [];
  });
}

function nameOf(node: ts.Node, source: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText(source);
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(source);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(source);
  return '(anonymous)';
}

/** Every function-like node in `file` with its length in lines. */
export function functionLengths(file: string): FunctionLength[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: FunctionLength[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({ file, line: start + 1, name: nameOf(node, source), lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

export function longestFunctions(dir: string): FunctionLength[] {
  return files(dir)
    .flatMap(functionLengths)
    .sort((a, b) => b.lines - a.lines);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const max = Number(process.argv.find((a) => a.startsWith('--max='))?.slice(6) ?? Number.NaN);
  const all = longestFunctions(args[0] ?? 'src');
  for (const f of all.slice(0, Number(args[1] ?? 10))) console.log(`${f.lines}\t${f.file}:${f.line}\t${f.name}`);
  const over = Number.isFinite(max) ? all.filter((f) => f.lines > max) : [];
  if (over.length > 0) {
    console.error(`${over.length} function(s) over ${max} lines`);
    process.exit(1);
  }
}
