package process

import (
	"encoding/binary"
	"errors"
	"strconv"
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
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, err
	}
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
