package container

// UseBridges makes s give each session a bridge network of its own, as it
// does on Docker, so that path is tested on Podman too.
func (s *Spawner) UseBridges() { s.bridges = true }

// OnPodman reports whether s found the engine to be Podman.
func (s *Spawner) OnPodman() bool { return s.podman }
