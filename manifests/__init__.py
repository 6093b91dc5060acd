"""Declarative manifests (data, not code): recipes/, subsets/, sources/. Installed as the
package `uir25m.manifests`; read them through `uir25m.packaged`."""
