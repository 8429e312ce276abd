package bus

// ChannelReplies reports how many replies a RabbitMQ subscription sent on
// the delivery's channel (Reply's path for Replies consumers).
func ChannelReplies(s Subscription) int64 {
	if rs, ok := s.(*rabbitSub); ok {
		return rs.channelReplies.Load()
	}
	return -1
}
