package wire

import "strings"

// AppID is the AMQP app-id property of a reply: the answering service and
// its version as "name@version" (just "name" without a version). It costs
// less on the wire than the headers HeaderService and HeaderVersion.
func AppID(service, version string) string {
	if version == "" {
		return service
	}
	return service + "@" + version
}

// SplitAppID undoes AppID. A version never contains "@", so the last one
// separates the two.
func SplitAppID(id string) (service, version string) {
	if i := strings.LastIndexByte(id, '@'); i >= 0 {
		return id[:i], id[i+1:]
	}
	return id, ""
}
