// BullMQ end to end against the server at 127.0.0.1:$GRANARY_PORT: jobs are
// enqueued, picked up by a worker, retried, delayed and completed, all
// through BullMQ's Lua scripts. Exits non-zero with a message on failure.
import { Queue, Worker } from 'bullmq';

const port = Number(process.env.GRANARY_PORT);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const DEADLINE_MS = 60_000;

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function waitFor(what, pred) {
  const until = Date.now() + DEADLINE_MS;
  while (Date.now() < until) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const queue = new Queue('granary-jobs', { connection });
let flakyRuns = 0;
const worker = new Worker(
  'granary-jobs',
  async (job) => {
    if (job.name === 'fail') throw new Error('always fails');
    if (job.name === 'flaky' && flakyRuns++ === 0) throw new Error('first attempt fails');
    return { sum: job.data.a + job.data.b };
  },
  { connection, concurrency: 4 },
);

try {
  await queue.waitUntilReady();
  const jobs = await queue.addBulk(
    Array.from({ length: 20 }, (_, i) => ({ name: 'add', data: { a: i, b: 100 } })),
  );
  const delayed = await queue.add('add', { a: 1, b: 1 }, { delay: 300 });
  const flaky = await queue.add('flaky', { a: 2, b: 2 }, { attempts: 3 });
  const failing = await queue.add('fail', {}, { attempts: 2 });
  const prioritized = await queue.add('add', { a: 5, b: 5 }, { priority: 1 });

  await waitFor('all jobs to finish', async () => {
    const c = await queue.getJobCounts('completed', 'failed');
    return c.completed === 23 && c.failed === 1;
  });
  for (const [i, j] of jobs.entries()) {
    const done = await queue.getJob(j.id);
    check(done.returnvalue.sum === i + 100, `job ${j.id} returned ${JSON.stringify(done.returnvalue)}`);
  }
  const d = await queue.getJob(delayed.id);
  check(d.returnvalue.sum === 2, 'delayed job result');
  check(d.finishedOn - d.timestamp >= 300, 'delayed job ran before its delay');
  const f = await queue.getJob(flaky.id);
  check(f.attemptsMade === 2 && f.returnvalue.sum === 4, `flaky job: attempts ${f.attemptsMade}`);
  const x = await queue.getJob(failing.id);
  check((await x.getState()) === 'failed' && x.failedReason === 'always fails', 'failing job state');
  check(x.attemptsMade === 2, `failing job attempts ${x.attemptsMade}`);
  const p = await queue.getJob(prioritized.id);
  check(p.returnvalue.sum === 10, 'prioritized job result');
  console.log('bullmq: all jobs processed');
} finally {
  await worker.close();
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();
}
