package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// Netlink sock_diag (linux/sock_diag.h, linux/inet_diag.h): asking the
// kernel for the listening TCP sockets costs a few microseconds, where
// reading /proc/net/tcp makes it print every socket of the namespace,
// thousands of TIME_WAIT ones during a class start, at every start.
const (
	sockDiagByFamily = 20
	tcpListen        = 10
	// inetDiagReqLen and inetDiagMsgLen are the sizes of struct
	// inet_diag_req_v2 and struct inet_diag_msg.
	inetDiagReqLen = 56
	inetDiagMsgLen = 72
)

// diagListeners returns the inodes of the TCP sockets listening on port
// (IPv4 and IPv6) in the portal's network namespace, from sock_diag.
func diagListeners(port int) (map[string]bool, error) {
	fd, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	out := map[string]bool{}
	buf := make([]byte, 64<<10)
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		req := make([]byte, syscall.NLMSG_HDRLEN+inetDiagReqLen)
		binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
		binary.NativeEndian.PutUint16(req[4:6], sockDiagByFamily)
		binary.NativeEndian.PutUint16(req[6:8], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
		binary.NativeEndian.PutUint32(req[8:12], uint32(seq+1))
		r := req[syscall.NLMSG_HDRLEN:]
		r[0], r[1] = family, syscall.IPPROTO_TCP
		binary.NativeEndian.PutUint32(r[4:8], 1<<tcpListen)
		if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
			return nil, err
		}
	recv:
		for {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil, err
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case syscall.NLMSG_DONE:
					break recv
				case syscall.NLMSG_ERROR:
					return nil, errors.New("sock_diag: the kernel refused the request")
				}
				if len(m.Data) < inetDiagMsgLen {
					continue
				}
				sport := binary.BigEndian.Uint16(m.Data[4:6])
				if int(sport) == port && m.Data[1] == tcpListen {
					out[strconv.FormatUint(uint64(binary.NativeEndian.Uint32(m.Data[68:72])), 10)] = true
				}
			}
		}
	}
	return out, nil
}

// openDiag opens a netlink sock_diag socket. Its answers come within the
// request's system call; the receive timeout only bounds a kernel that
// never answers.
func openDiag() (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return -1, err
	}
	err = syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
	if err == nil {
		err = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Sec: 1})
	}
	if err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// diagConn asks sock_diag which socket a connection to an address would
// reach. It keeps its netlink socket open between questions: a question is
// then one request and one answer, about 4 µs here, against 17 µs with a
// socket of its own and 33 µs for the connect it spares a readiness probe
// (a refused connect creates and tears down a socket). The zero value is
// ready; after Close every question opens and closes its own socket.
type diagConn struct {
	mu     sync.Mutex
	fd     int
	open   bool
	closed bool
	seq    uint32
	req    []byte // the request, rebuilt for every question
	buf    []byte // the answer
}

// errNotAnIP is listenerAt's answer for a host that is not an IP address:
// the caller falls back to listing every listener of the port.
var errNotAnIP = errors.New("sock_diag: the bind host is not an IP address")

// dialedIP is the address a connection to host goes to, nil when host is
// a name: an unspecified address (0.0.0.0, ::) is dialled as loopback, as
// connect does.
func dialedIP(host string) net.IP {
	ip := net.ParseIP(host)
	switch {
	case ip == nil || !ip.IsUnspecified():
		return ip
	case ip.To4() != nil:
		return net.IPv4(127, 0, 0, 1)
	default:
		return net.IPv6loopback
	}
}

// listenerAt returns the inode of the TCP socket a connection to ip:port
// would reach now, 0 when none would: the listener the kernel picks for
// that address, whether it bound the address itself, a wildcard or a
// dual-stack IPv6 wildcard. ip comes from dialedIP; nil gives errNotAnIP.
func (d *diagConn) listenerAt(ip net.IP, port int) (uint32, error) {
	if ip == nil {
		return 0, errNotAnIP
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.buf == nil {
		d.buf = make([]byte, 4096)
		d.req = make([]byte, syscall.NLMSG_HDRLEN+inetDiagReqLen)
	}
	if d.closed {
		fd, err := openDiag()
		if err != nil {
			return 0, err
		}
		defer syscall.Close(fd)
		return d.ask(fd, ip, port)
	}
	if !d.open {
		fd, err := openDiag()
		if err != nil {
			return 0, err
		}
		d.fd, d.open = fd, true
	}
	inode, err := d.ask(d.fd, ip, port)
	if err != nil {
		// Whatever went wrong, the next question starts on a new socket
		// rather than reading answers meant for this one.
		syscall.Close(d.fd)
		d.open = false
	}
	return inode, err
}

// ask sends one exact sock_diag request on fd and reads its answer. The
// kernel looks the address up as it would for an incoming connection (the
// request's source is the connection's destination).
func (d *diagConn) ask(fd int, ip net.IP, port int) (uint32, error) {
	d.seq++
	seq := d.seq
	req := d.req
	clear(req)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:8], syscall.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	r := req[syscall.NLMSG_HDRLEN:]
	r[1] = syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:8], ^uint32(0)) // any state
	// struct inet_diag_sockid at r[8:]: sport, dport, src[16], dst[16],
	// if, cookie[2]; no cookie to match.
	binary.BigEndian.PutUint16(r[8:10], uint16(port))
	if ip4 := ip.To4(); ip4 != nil {
		r[0] = syscall.AF_INET
		copy(r[12:16], ip4)
	} else {
		r[0] = syscall.AF_INET6
		copy(r[12:28], ip.To16())
	}
	binary.NativeEndian.PutUint64(r[48:56], ^uint64(0))
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, err
	}
	for {
		n, _, err := syscall.Recvfrom(fd, d.buf, 0)
		if err != nil {
			return 0, err
		}
		msgs, err := syscall.ParseNetlinkMessage(d.buf[:n])
		if err != nil {
			return 0, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // the answer to an earlier question given up on
			}
			switch {
			case m.Header.Type == syscall.NLMSG_ERROR && len(m.Data) >= 4:
				errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data[0:4])))
				if errno == syscall.ENOENT {
					return 0, nil
				}
				return 0, fmt.Errorf("sock_diag: %w", errno)
			case m.Header.Type == sockDiagByFamily && len(m.Data) >= inetDiagMsgLen:
				return binary.NativeEndian.Uint32(m.Data[68:72]), nil
			default:
				return 0, fmt.Errorf("sock_diag: unexpected answer of type %d", m.Header.Type)
			}
		}
	}
}

// Close releases the kept socket; questions asked later still work.
func (d *diagConn) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open {
		syscall.Close(d.fd)
		d.open = false
	}
	d.closed = true
}
