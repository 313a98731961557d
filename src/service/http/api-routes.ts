import type { FastifyInstance } from 'fastify';
import { catalogueJson } from '../../api/catalogue';
import { NotFoundError } from '../../errors';
import type { ServiceControl } from '../types';
import { checkRunAllowed } from './auth';

interface JobParams {
  name: string;
}

/** The JSON API: jobs, their catalogues, runs, and starting a run. */
export function registerApiRoutes(app: FastifyInstance, control: ServiceControl, token: string | undefined): void {
  const job = (name: string) => {
    const view = control.job(name);
    if (!view) throw unknownJob(name, control);
    return view;
  };

  app.get('/api/jobs', async () => ({ role: control.role(), jobs: control.jobs() }));

  app.get<{ Params: JobParams }>('/api/jobs/:name', async (req) => job(req.params.name));

  app.get<{ Params: JobParams }>('/api/jobs/:name/backups', async (req, reply) => {
    job(req.params.name);
    // A client that hangs up stops the listing (the response closes before it was written).
    const abort = new AbortController();
    const gone = () => {
      if (!reply.raw.writableEnded) abort.abort();
    };
    reply.raw.once('close', gone);
    try {
      return catalogueJson(await control.backups(req.params.name, abort.signal));
    } finally {
      reply.raw.off('close', gone);
    }
  });

  app.post<{ Params: JobParams }>('/api/jobs/:name/run', async (req, reply) => {
    const what = `POST /api/jobs/${req.params.name}/run`;
    checkRunAllowed(what, req.headers.authorization, req.socket.remoteAddress, token);
    job(req.params.name);
    const run = control.trigger(req.params.name);
    return reply.code(202).header('location', `/api/runs/${encodeURIComponent(run.id)}`).send({ run });
  });

  app.get<{ Params: { id: string } }>('/api/runs/:id', async (req) => {
    const run = control.run(req.params.id);
    if (!run) throw new NotFoundError(`no run ${JSON.stringify(req.params.id)} in this instance`, 'run ids come from POST /api/jobs/NAME/run or GET /api/jobs; an instance keeps its recent runs only until it restarts');
    return run;
  });
}

function unknownJob(name: string, control: ServiceControl): NotFoundError {
  const names = control.jobs().map((j) => j.name);
  return new NotFoundError(`no job ${JSON.stringify(name)} in this service`, `the configured jobs are ${names.join(', ')}; GET /api/jobs lists them`);
}
