"""The admins' dashboard (/dashboard/): figures, map, exports, classifiers, training."""
