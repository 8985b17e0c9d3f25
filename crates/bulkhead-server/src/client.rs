//! The client side: a channel to a running server, and requests that carry a bearer credential. Used
//! by `bulkhead admin` / `bulkhead client` and by the tests.

use crate::limits;
use crate::proto::admin_client::AdminClient;
use crate::proto::data_plane_client::DataPlaneClient;
use tonic::transport::Channel;

/// Where `bulkhead serve` listens by default, and where the clients look for it.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:7450";

/// Connects to a server at `address` (`host:port`, or a full `http://` URL).
pub async fn connect(address: &str) -> anyhow::Result<Channel> {
    let url = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    Ok(Channel::from_shared(url)?.tcp_nodelay(true).connect().await?)
}

/// A data-plane client that accepts responses up to the server's message limit.
pub fn data_plane(channel: Channel) -> DataPlaneClient<Channel> {
    DataPlaneClient::new(channel)
        .max_decoding_message_size(limits::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(usize::MAX)
}

/// An admin client.
pub fn admin(channel: Channel) -> AdminClient<Channel> {
    AdminClient::new(channel).max_decoding_message_size(limits::MAX_MESSAGE_BYTES)
}

/// `message` with `authorization: Bearer <token>`.
pub fn authorized<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| anyhow::anyhow!("the credential is not a valid header value"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}
