"""Real consumers (Ansible, ...) driving Isthmus over HTTP."""
