import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';

export type YamlPath = readonly (string | number)[];

/**
 * The line (1-based) of the deepest node on `path` that the document holds:
 * the key's line for a map entry, so a missing or wrong entry points at its
 * parent or at itself.
 */
export function lineOf(doc: Document, lines: LineCounter, path: YamlPath): number | undefined {
  let node: unknown = doc.contents;
  let at: Node | undefined = isNode(node) ? node : undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) break;
      if (isNode(pair.key)) at = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (isNode(node)) at = node;
      else break;
    } else break;
  }
  const offset = at?.range?.[0];
  return offset === undefined ? undefined : lines.linePos(offset).line;
}
