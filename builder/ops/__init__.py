"""The operations around builds: gc, prune (with inuse), matrix, bench, summary, and manifests
(the CAPH rollout; its machinery is ``builder.rollout``)."""
