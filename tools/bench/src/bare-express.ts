/** The ingress limit: a bare Express handler that parses the JSON body and answers 202. PORT from the env. */
import express from 'express';

const app = express();
app.post('/hook', express.json({ limit: '10mb' }), (_req, res) => void res.status(202).json({ ok: true }));
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
