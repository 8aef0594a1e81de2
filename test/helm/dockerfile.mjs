// Just enough Dockerfile and .dockerignore reading to check the images' build files without a
// container engine (none exists here): instructions with their arguments, ARG defaults
// substituted, and whether a context path is excluded by the ignore file.

/**
 * Dockerfile text → [{ instruction, args, flags, json }] (line continuations joined, comments
 * and the `# syntax=` directive dropped). `args` are the words after the flags (--from=…);
 * for the JSON (exec) form they are the array's items.
 */
export function parseDockerfile(text) {
  const logical = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(current + line);
    current = '';
  }
  if (current.trim()) logical.push(current.trim());

  const args = {};
  return logical.map((line) => {
    const [, name, rest] = /^(\S+)\s*(.*)$/.exec(line);
    const instruction = name.toUpperCase();
    let words;
    let json = false;
    if (rest.startsWith('[')) {
      words = JSON.parse(rest);
      json = true;
    } else {
      words = rest.split(/\s+/).filter(Boolean);
    }
    if (instruction === 'ARG') {
      const [key, value = ''] = words[0].split('=');
      args[key] = value;
    }
    const substituted = words.map((w) => w.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a, b) => args[a ?? b] ?? m));
    const flags = instruction === 'RUN' || json ? [] : substituted.filter((w) => w.startsWith('--'));
    const plain = instruction === 'RUN' || json ? substituted : substituted.filter((w) => !w.startsWith('--'));
    return { instruction, args: plain, flags, json, line };
  });
}

/** .dockerignore text → a function that tells whether a context-relative path is excluded. */
export function dockerignoreMatcher(text) {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      return { negate, regex: globToRegex(pattern) };
    });
  return (path) => {
    // A path is excluded when it or any folder above it matches (the last matching rule wins).
    const parts = path.replace(/\/+$/, '').split('/');
    let excluded = false;
    for (const { negate, regex } of rules) {
      for (let i = 1; i <= parts.length; i++) {
        if (regex.test(parts.slice(0, i).join('/'))) excluded = !negate;
      }
    }
    return excluded;
  };
}

function globToRegex(pattern) {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (pattern.startsWith('**/', i)) {
      re += '(?:.*/)?';
      i += 2;
    } else if (pattern.startsWith('**', i)) {
      re += '.*';
      i += 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
