/**
 * `ftjob controller`: runs the FineTuneJob controller against a cluster (in-cluster credentials or
 * --kubeconfig), with metrics and health endpoints and optional leader election.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { hostname } from 'node:os';
import { FineTuneJobController, loadKubeConfig, serveHealth, serveMetrics, type ControllerOptions } from '@finetune/controller';
import { UserError } from '@finetune/worker';

export const DEFAULT_WORKER_IMAGE = 'ghcr.io/finetune-operator/worker:0.1.0';

interface ControllerFlags {
  kubeconfig?: string;
  namespace?: string;
  workerImage: string;
  workerImagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  workerNodeSelector: Record<string, string>;
  workerTolerationsJson?: ControllerOptions['workerTolerations'];
  workerRuntimeClass?: string;
  workerMetricsPort: number;
  leaderElect?: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  metricsPort: number;
  healthPort: number;
  concurrency: number;
}

const port = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`${flag} must be a port number (0-65535), got '${v}'`);
  return n;
};

function keyValue(v: string, previous: Record<string, string>): Record<string, string> {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got '${v}'`);
  return { ...previous, [v.slice(0, eq)]: v.slice(eq + 1) };
}

function tolerations(v: string): ControllerOptions['workerTolerations'] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`--worker-tolerations-json is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => t && typeof t === 'object' && !Array.isArray(t))) {
    throw new InvalidArgumentError('--worker-tolerations-json must be a JSON array of toleration objects');
  }
  return parsed as ControllerOptions['workerTolerations'];
}

export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the FineTuneJob controller (in-cluster credentials, or --kubeconfig)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster, then $KUBECONFIG / ~/.kube/config)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--worker-image <image>', 'worker image when a job names none', DEFAULT_WORKER_IMAGE)
    .addOption(new Option('--worker-image-pull-policy <policy>', 'worker image pull policy').choices(['Always', 'IfNotPresent', 'Never']))
    .option('--worker-node-selector <key=value>', 'node label worker pods require (repeatable)', keyValue, {})
    .option('--worker-tolerations-json <json>', 'tolerations of worker pods, a JSON array', tolerations)
    .option('--worker-runtime-class <name>', 'RuntimeClass of worker pods (e.g. nvidia)')
    .option('--worker-metrics-port <port>', 'port workers serve metrics on', port('--worker-metrics-port'), 9464)
    .option('--leader-elect', 'compete for a Lease so only one replica acts')
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: $POD_NAMESPACE)')
    .option('--leader-election-id <name>', 'name of the Lease', 'finetune-operator-leader')
    .option('--metrics-port <port>', 'Prometheus /metrics port (0: off)', port('--metrics-port'), 8080)
    .option('--health-port <port>', '/healthz and /readyz port (0: off)', port('--health-port'), 8081)
    .option('--concurrency <n>', 'jobs reconciled at once', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--concurrency must be a positive integer, got '${v}'`);
      return n;
    }, 4)
    .action(async (flags: ControllerFlags) => {
      let config;
      try {
        config = loadKubeConfig(flags.kubeconfig);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      const leNamespace = flags.leaderElectionNamespace ?? process.env.POD_NAMESPACE;
      if (flags.leaderElect && !leNamespace) throw new UserError('--leader-elect needs --leader-election-namespace (or POD_NAMESPACE)');
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      const controller = new FineTuneJobController(config, {
        workerImage: flags.workerImage,
        workerMetricsPort: flags.workerMetricsPort,
        concurrency: flags.concurrency,
        log,
        ...(flags.namespace ? { namespace: flags.namespace } : {}),
        ...(flags.workerImagePullPolicy ? { workerImagePullPolicy: flags.workerImagePullPolicy } : {}),
        ...(Object.keys(flags.workerNodeSelector).length > 0 ? { workerNodeSelector: flags.workerNodeSelector } : {}),
        ...(flags.workerTolerationsJson ? { workerTolerations: flags.workerTolerationsJson } : {}),
        ...(flags.workerRuntimeClass ? { workerRuntimeClassName: flags.workerRuntimeClass } : {}),
        ...(flags.leaderElect ? { leaderElection: { namespace: leNamespace!, name: flags.leaderElectionId, identity: process.env.POD_NAME ?? `${hostname()}_${process.pid}` } } : {}),
      });
      const servers = [
        ...(flags.metricsPort ? [await serveMetrics(controller.metrics.registry, flags.metricsPort)] : []),
        ...(flags.healthPort ? [await serveHealth(() => controller.ready, flags.healthPort)] : []),
      ];
      log(`ftjob controller: watching ${flags.namespace ?? 'all namespaces'}; metrics :${flags.metricsPort}, health :${flags.healthPort}`);
      const stop = async (signal: string) => {
        log(`${signal}: stopping`);
        await controller.stop();
        for (const s of servers) s.close();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
      await controller.start();
      await new Promise(() => {}); // runs until a signal
    });
}
