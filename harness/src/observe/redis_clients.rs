//! Redis's own view of who is connected (CLIENT LIST), for GS-CLEANUP.

use std::net::SocketAddr;
use std::time::Duration;

/// Client addresses ("127.0.0.1:53422") connected to the Redis at `addr`.
pub async fn client_addrs(addr: SocketAddr, password: Option<&str>) -> Result<Vec<String>, String> {
    let url = match password {
        Some(p) if !p.is_empty() => format!("redis://:{p}@{addr}/"),
        _ => format!("redis://{addr}/"),
    };
    let fut = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(parse_client_list(&list))
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .map_err(|_| "Redis did not answer CLIENT LIST within 2 s".to_string())?
}

pub fn parse_client_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().find_map(|kv| kv.strip_prefix("addr=")).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_client_list() {
        let text = "id=3 addr=127.0.0.1:50100 laddr=127.0.0.1:6379 fd=8 name=refstack-app\nid=4 addr=127.0.0.1:50102 laddr=127.0.0.1:6379 fd=9 name=\n";
        assert_eq!(super::parse_client_list(text), vec!["127.0.0.1:50100", "127.0.0.1:50102"]);
    }
}
