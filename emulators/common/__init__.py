"""Plumbing the stack and the API emulators share: processes (:mod:`.proc`), the local image registry
(:mod:`.registry`) and its ``docker`` command line (:mod:`.dockercli`), and running an image's command as a
local process (:mod:`.localrun`)."""
