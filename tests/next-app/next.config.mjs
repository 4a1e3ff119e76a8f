// The tests build this app inside the repository (its node_modules link to tests/node_modules).
export default {
  turbopack: process.env.BATON_REPO_ROOT ? { root: process.env.BATON_REPO_ROOT } : {},
  outputFileTracingRoot: process.env.BATON_REPO_ROOT,
};
