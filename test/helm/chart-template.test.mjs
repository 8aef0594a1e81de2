// The Helm chart, rendered and linted by the real helm (built from helm.sh/helm/v3, see
// test/control-plane/build-helm.sh); no cluster needed. The rendered objects are parsed and
// checked field by field: controller args, security context, probes, the exact RBAC rules,
// monitors only when enabled, one dashboard ConfigMap per JSON file, and the values schema.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { CHART, byKind, ensureHelm, helm, renderChart, setArgs } from './helm.mjs';

const BUILD_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 60) * 1000;
const T = { timeout: 60_000 };
const NAME = 'ft-finetune-operator'; // release "ft" + chart name
const NS = 'finetune-system';

// What the controller does, and so all that the chart may grant (the issue's list).
const CONTROLLER_RULES = [
  { apiGroups: ['finetune.dev'], resources: ['finetunejobs'], verbs: ['list', 'watch', 'delete'] },
  { apiGroups: ['finetune.dev'], resources: ['finetunejobs/status'], verbs: ['update'] },
  { apiGroups: ['finetune.dev'], resources: ['finetunejobs/finalizers'], verbs: ['update'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch', 'create', 'delete'] },
  { apiGroups: [''], resources: ['services', 'secrets'], verbs: ['list', 'watch', 'create'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch', 'create', 'patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];
const LEADER_ELECTION_RULES = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];
const DEFAULT_WORKER_TOLERATIONS = [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }];

before(async () => {
  await ensureHelm();
}, { timeout: BUILD_TIMEOUT_MS });

/** The JSON value of a `--flag=<json>` argument (helm's toJson orders keys; compare values). */
function flagJson(args, flag) {
  const arg = args.find((a) => a.startsWith(`${flag}=`));
  assert.ok(arg, `${flag} is passed`);
  return JSON.parse(arg.slice(flag.length + 1));
}

const controllerOf = (objects) => byKind(objects, 'Deployment', NAME).spec.template.spec.containers[0];

test('helm lint --strict passes with the defaults and with every optional part on', T, async () => {
  const plain = await helm(['lint', '--strict', CHART]);
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  const everything = await helm(['lint', '--strict', CHART, ...setArgs({
    'serviceMonitor.enabled': true, 'podMonitor.enabled': true, watchNamespace: 'team-a',
    'workers.runtimeClassName': 'nvidia', 'workers.nodeSelector.gpu': 'a100', 'controller.podAntiAffinity': 'hard',
  })]);
  assert.equal(everything.code, 0, everything.stdout + everything.stderr);
});

/** The dashboards the repository's chart ships (dashboards/*.json; none is fine). */
function shippedDashboards() {
  try {
    return readdirSync(join(CHART, 'dashboards')).filter((f) => f.endsWith('.json')).sort();
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

test('default render: exactly the expected objects, no monitors', T, async () => {
  const objects = await renderChart();
  const names = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  const dashboards = shippedDashboards().map((f) => `ConfigMap/${NAME}-dashboard-${f.slice(0, -'.json'.length).toLowerCase()}`);
  assert.deepEqual(names, [
    'ClusterRole/ft-finetune-operator',
    'ClusterRoleBinding/ft-finetune-operator',
    ...dashboards,
    'CustomResourceDefinition/finetunejobs.finetune.dev',
    'Deployment/ft-finetune-operator',
    'Role/ft-finetune-operator-leader-election',
    'RoleBinding/ft-finetune-operator-leader-election',
    'Service/ft-finetune-operator-metrics',
    'ServiceAccount/ft-finetune-operator',
  ]);
  for (const o of objects.filter((x) => x.kind !== 'CustomResourceDefinition' && !x.kind.startsWith('Cluster'))) {
    assert.equal(o.metadata.namespace, NS, `${o.kind} ${o.metadata.name} is in the release namespace`);
  }
});

test('controller Deployment: replicas, args, env, ports, probes', T, async () => {
  const objects = await renderChart();
  const deployment = byKind(objects, 'Deployment', NAME);
  assert.equal(deployment.spec.replicas, 2, 'two replicas by default: leader election makes one a standby');
  const pod = deployment.spec.template.spec;
  assert.equal(pod.serviceAccountName, NAME);
  const c = controllerOf(objects);
  assert.equal(c.image, 'ghcr.io/finetune-operator/controller:0.1.0');
  assert.deepEqual(c.command, ['ftjob']);
  assert.deepEqual(c.args, [
    'controller',
    '--leader-elect',
    '--leader-election-namespace=$(POD_NAMESPACE)',
    '--metrics-port=8080',
    '--health-port=8081',
    '--worker-image=ghcr.io/finetune-operator/worker:0.1.0',
    '--worker-image-pull-policy=IfNotPresent',
    '--worker-tolerations-json=' + JSON.stringify(flagJson(c.args, '--worker-tolerations-json')),
  ]);
  assert.deepEqual(flagJson(c.args, '--worker-tolerations-json'), DEFAULT_WORKER_TOLERATIONS);
  assert.deepEqual(c.env, [
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  ]);
  assert.deepEqual(c.ports, [
    { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
    { name: 'health', containerPort: 8081, protocol: 'TCP' },
  ]);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'health' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'health' });
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'default resources');
  // Replicas prefer different nodes by default.
  const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  assert.equal(term.topologyKey, 'kubernetes.io/hostname');
  assert.deepEqual(term.labelSelector.matchLabels, deployment.spec.selector.matchLabels);
});

test('controller security: non-root 65532, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp, /tmp emptyDir', T, async () => {
  const objects = await renderChart();
  const pod = byKind(objects, 'Deployment', NAME).spec.template.spec;
  const c = controllerOf(objects);
  assert.deepEqual(c.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.deepEqual(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }]);
  assert.deepEqual(pod.volumes.map((v) => [v.name, Object.keys(v).filter((k) => k !== 'name')]), [['tmp', ['emptyDir']]]);
});

test('RBAC: exactly the rules the controller uses, bound to its ServiceAccount', T, async () => {
  const objects = await renderChart();
  assert.deepEqual(byKind(objects, 'ClusterRole', NAME).rules, CONTROLLER_RULES);
  const leader = byKind(objects, 'Role', `${NAME}-leader-election`);
  assert.equal(leader.metadata.namespace, NS);
  assert.deepEqual(leader.rules, LEADER_ELECTION_RULES);
  const subject = [{ kind: 'ServiceAccount', name: NAME, namespace: NS }];
  const crb = byKind(objects, 'ClusterRoleBinding', NAME);
  assert.deepEqual(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME });
  assert.deepEqual(crb.subjects, subject);
  const rb = byKind(objects, 'RoleBinding', `${NAME}-leader-election`);
  assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${NAME}-leader-election` });
  assert.deepEqual(rb.subjects, subject);
});

test('an existing ServiceAccount, and RBAC left to the cluster admin', T, async () => {
  const objects = await renderChart({ sets: { 'serviceAccount.create': false, 'serviceAccount.name': 'ops-sa' } });
  assert.deepEqual(byKind(objects, 'ServiceAccount'), []);
  assert.equal(byKind(objects, 'Deployment', NAME).spec.template.spec.serviceAccountName, 'ops-sa');
  assert.deepEqual(byKind(objects, 'ClusterRoleBinding', NAME).subjects, [{ kind: 'ServiceAccount', name: 'ops-sa', namespace: NS }]);
  const unnamed = await helm(['template', 'ft', CHART, ...setArgs({ 'serviceAccount.create': false })]);
  assert.notEqual(unnamed.code, 0);
  assert.match(unnamed.stderr, /serviceAccount\.name is required when serviceAccount\.create is false/);
  const noRbac = await renderChart({ sets: { 'rbac.create': false } });
  assert.deepEqual(noRbac.filter((o) => o.apiVersion.startsWith('rbac.authorization.k8s.io/')), []);
});

test('watchNamespace: a Role in that namespace instead of a ClusterRole, and --namespace', T, async () => {
  const objects = await renderChart({ sets: { watchNamespace: 'team-a', 'podMonitor.enabled': true } });
  assert.deepEqual(byKind(objects, 'ClusterRole'), []);
  assert.deepEqual(byKind(objects, 'ClusterRoleBinding'), []);
  const role = byKind(objects, 'Role', NAME);
  assert.equal(role.metadata.namespace, 'team-a');
  assert.deepEqual(role.rules, CONTROLLER_RULES);
  const binding = byKind(objects, 'RoleBinding', NAME);
  assert.equal(binding.metadata.namespace, 'team-a');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: NAME, namespace: NS }]);
  assert.ok(controllerOf(objects).args.includes('--namespace=team-a'));
  assert.deepEqual(byKind(objects, 'PodMonitor', `${NAME}-workers`).spec.namespaceSelector, { matchNames: ['team-a'] });
});

test('metrics Service selects the controller pods on the metrics port', T, async () => {
  const objects = await renderChart();
  const svc = byKind(objects, 'Service', `${NAME}-metrics`);
  const podLabels = byKind(objects, 'Deployment', NAME).spec.template.metadata.labels;
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(podLabels[k], v, `pod label ${k}`);
  assert.deepEqual(svc.spec.ports, [{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
});

test('ServiceMonitor and PodMonitor: only when enabled, with the kube-prometheus-stack label', T, async () => {
  const objects = await renderChart({ sets: { 'serviceMonitor.enabled': true, 'podMonitor.enabled': true } });
  const sm = byKind(objects, 'ServiceMonitor', NAME);
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm.metadata.labels.release, 'kube-prometheus-stack');
  const svc = byKind(objects, 'Service', `${NAME}-metrics`);
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v, `Service label ${k}`);
  assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
  assert.equal(sm.spec.endpoints[0].port, 'metrics');
  assert.equal(sm.spec.endpoints[0].path, '/metrics');

  const pm = byKind(objects, 'PodMonitor', `${NAME}-workers`);
  assert.equal(pm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(pm.metadata.labels.release, 'kube-prometheus-stack');
  assert.deepEqual(pm.spec.selector, { matchLabels: { 'app.kubernetes.io/name': 'finetune-worker' } });
  assert.deepEqual(pm.spec.namespaceSelector, { any: true }, 'worker pods live in the jobs\' namespaces');
  assert.equal(pm.spec.podMetricsEndpoints[0].port, 'metrics');
  assert.equal(pm.spec.podMetricsEndpoints[0].path, '/metrics');

  const relabelled = await renderChart({ sets: { 'serviceMonitor.enabled': true, 'serviceMonitor.labels.release': 'prom', 'serviceMonitor.labels.team': 'ml' } });
  assert.equal(byKind(relabelled, 'ServiceMonitor', NAME).metadata.labels.release, 'prom');
  assert.equal(byKind(relabelled, 'ServiceMonitor', NAME).metadata.labels.team, 'ml');
  assert.deepEqual(byKind(relabelled, 'PodMonitor'), []);
});

test('worker GPU values become controller flags', T, async () => {
  const tolerations = [{ key: 'gpu', operator: 'Equal', value: 'h100', effect: 'NoSchedule' }];
  const objects = await renderChart({
    sets: { 'workers.nodeSelector.accelerator': 'nvidia-h100', 'workers.nodeSelector.pool': 'gpu', 'workers.runtimeClassName': 'nvidia', 'workers.image.tag': '1.2.3', 'workers.image.pullPolicy': 'Always' },
    args: ['--set-json', `workers.tolerations=${JSON.stringify(tolerations)}`],
  });
  const args = controllerOf(objects).args;
  assert.deepEqual(args.slice(5), [
    '--worker-image=ghcr.io/finetune-operator/worker:1.2.3',
    '--worker-image-pull-policy=Always',
    '--worker-node-selector=accelerator=nvidia-h100',
    '--worker-node-selector=pool=gpu',
    '--worker-tolerations-json=' + JSON.stringify(flagJson(args, '--worker-tolerations-json')),
    '--worker-runtime-class=nvidia',
  ]);
  assert.deepEqual(flagJson(args, '--worker-tolerations-json'), tolerations);
  const none = await renderChart({ args: ['--set-json', 'workers.tolerations=[]'] });
  assert.ok(!controllerOf(none).args.some((a) => a.startsWith('--worker-tolerations-json')), 'no flag without tolerations');
  const pinned = await renderChart({ sets: { 'controller.image.digest': `sha256:${'a'.repeat(64)}` } });
  assert.equal(controllerOf(pinned).image, `ghcr.io/finetune-operator/controller@sha256:${'a'.repeat(64)}`);
});

test('values.schema.json refuses bad values, naming the field', T, async () => {
  const cases = [
    [{ 'controller.replicas': 0 }, /controller\/replicas/],
    [{ 'controller.replicas': 'two' }, /controller\/replicas/],
    [{ 'controller.replica': 3 }, /at '\/controller': additional properties 'replica' not allowed/],
    [{ 'workers.image.pullPolicy': 'Sometimes' }, /workers\/image\/pullPolicy/],
    [{ 'serviceMonitor.interval': 'often' }, /serviceMonitor\/interval/],
    [{ watchNamespace: 'Team_A' }, /watchNamespace/],
    [{ 'controller.podAntiAffinity': 'maybe' }, /controller\/podAntiAffinity/],
    [{ unknownTopLevel: 1 }, /additional properties 'unknownTopLevel' not allowed/],
  ];
  for (const [sets, field] of cases) {
    const rendered = await helm(['template', 'ft', CHART, ...setArgs(sets)]);
    assert.notEqual(rendered.code, 0, `helm template accepted ${JSON.stringify(sets)}`);
    assert.match(rendered.stderr, /values don't meet the specifications of the schema/);
    assert.match(rendered.stderr, field, `helm template ${JSON.stringify(sets)}: ${rendered.stderr}`);
  }
  const linted = await helm(['lint', CHART, ...setArgs({ 'controller.replicas': 'two' })]);
  assert.notEqual(linted.code, 0);
  assert.match(linted.stdout + linted.stderr, /controller\/replicas/);
});

test('dashboards: one ConfigMap per dashboards/*.json, labelled for the Grafana sidecar; none when the folder is empty', T, async () => {
  // The repository's chart: as many dashboard ConfigMaps as JSON files (none is fine).
  const shipped = shippedDashboards();
  const repo = await renderChart();
  const dashboardsOf = (objs) => byKind(objs, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
  assert.equal(dashboardsOf(repo).length, shipped.length);
  for (const file of shipped) {
    const cm = dashboardsOf(repo).find((c) => c.data[file] !== undefined);
    assert.ok(cm, `a ConfigMap carries ${file}`);
    assert.equal(cm.data[file], readFileSync(join(CHART, 'dashboards', file), 'utf8'));
  }

  // A copy of the chart with two dashboards of its own (one with Grafana's {{ }} legend syntax,
  // which must come through untouched) and a non-JSON file that must be ignored.
  const dir = mkdtempSync(join(tmpdir(), 'ft-chart-'));
  try {
    const chart = join(dir, 'finetune-operator');
    cpSync(CHART, chart, { recursive: true });
    rmSync(join(chart, 'dashboards'), { recursive: true, force: true });
    mkdirSync(join(chart, 'dashboards'));
    const training = JSON.stringify({ title: 'Training', panels: [{ targets: [{ expr: 'ft_loss', legendFormat: '{{job}} rank {{rank}}' }] }], uid: 'ft-training' }, null, 2);
    const health = JSON.stringify({ title: 'Operator Health', panels: [] });
    writeFileSync(join(chart, 'dashboards', 'training.json'), training);
    writeFileSync(join(chart, 'dashboards', 'Operator Health.json'), health);
    writeFileSync(join(chart, 'dashboards', 'notes.txt'), 'not a dashboard');
    const objects = await renderChart({ chart, sets: { 'dashboards.annotations.grafana_folder': 'FineTune' } });
    const cms = dashboardsOf(objects).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    assert.deepEqual(cms.map((c) => c.metadata.name), [`${NAME}-dashboard-operator-health`, `${NAME}-dashboard-training`]);
    assert.deepEqual(cms[0].data, { 'Operator Health.json': health });
    assert.deepEqual(cms[1].data, { 'training.json': training });
    for (const cm of cms) {
      assert.equal(cm.metadata.namespace, NS);
      assert.equal(cm.metadata.annotations.grafana_folder, 'FineTune');
    }
    const relabelled = await renderChart({ chart, args: ['--set-json', 'dashboards.labels={"grafana_dashboard":"finetune"}'] });
    assert.equal(byKind(relabelled, 'ConfigMap').filter((c) => c.metadata.labels.grafana_dashboard === 'finetune').length, 2);
    const off = await renderChart({ chart, sets: { 'dashboards.enabled': false } });
    assert.deepEqual(byKind(off, 'ConfigMap'), []);

    rmSync(join(chart, 'dashboards'), { recursive: true });
    mkdirSync(join(chart, 'dashboards'));
    assert.deepEqual(byKind(await renderChart({ chart }), 'ConfigMap'), [], 'an empty folder renders nothing');
    rmSync(join(chart, 'dashboards'), { recursive: true });
    assert.deepEqual(byKind(await renderChart({ chart }), 'ConfigMap'), [], 'no folder renders nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Dotted paths of every value in values.yaml, walking only the maps whose schema fixes their
 * keys (additionalProperties false); a free-form map such as `labels` is one value.
 */
function valuePaths(value, schema, prefix = '') {
  if (schema?.additionalProperties === false && value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => valuePaths(v, schema.properties?.[k], prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

test('the chart README documents every value, and the CRD upgrade path', T, async () => {
  const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
  const paths = valuePaths(values, schema);
  const valuesSection = readme.slice(readme.indexOf('## Values'));
  const rows = [...valuesSection.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(paths.filter((p) => !rows.includes(p)), [], 'values missing from the README table');
  assert.deepEqual(rows.filter((r) => !paths.includes(r)), [], 'README rows for values that do not exist');
  assert.match(readme, /kubectl apply --server-side -f .*crds\//);
});
