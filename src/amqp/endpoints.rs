//! The broker endpoints (cluster nodes) and the order they are tried in:
//! round-robin from a start shuffled once per process, so that replicas
//! spread over the nodes and a lost node's successor is tried next.

use rand::Rng;

use crate::settings::SecretUrl;

/// The endpoint list and the cursor of the next attempt.
#[derive(Debug, Clone)]
pub struct Endpoints {
    urls: Vec<SecretUrl>,
    redacted: Vec<String>,
    next: usize,
}

/// One endpoint to try.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// Its position in the configured list.
    pub index: usize,
    /// The URL to connect to.
    pub url: &'a SecretUrl,
    /// The URL safe to log.
    pub redacted: &'a str,
}

impl Endpoints {
    /// Tries `urls` in order from `start` (taken modulo their number).
    ///
    /// # Panics
    /// If `urls` is empty: settings always give at least one.
    pub fn new(urls: Vec<SecretUrl>, start: usize) -> Self {
        assert!(!urls.is_empty(), "at least one AMQP endpoint");
        let redacted = urls.iter().map(SecretUrl::redacted).collect();
        let next = start % urls.len();
        Self {
            urls,
            redacted,
            next,
        }
    }

    /// Tries `urls` in order from a random start.
    pub fn shuffled(urls: Vec<SecretUrl>) -> Self {
        let start = rand::rng().random_range(0..urls.len().max(1));
        Self::new(urls, start)
    }

    /// How many endpoints there are: one failed round is this many attempts.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// The endpoint of the next attempt; the one after it comes next time.
    pub fn next_endpoint(&mut self) -> Endpoint<'_> {
        let index = self.next;
        self.next = (index + 1) % self.urls.len();
        Endpoint {
            index,
            url: &self.urls[index],
            redacted: &self.redacted[index],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<SecretUrl> {
        (0..n)
            .map(|i| SecretUrl::new(format!("amqp://u:secret@node{i}:5672/%2f")))
            .collect()
    }

    #[test]
    fn endpoints_are_tried_round_robin_from_the_start() {
        let mut endpoints = Endpoints::new(urls(3), 4);
        let order: Vec<usize> = (0..5).map(|_| endpoints.next_endpoint().index).collect();
        assert_eq!(order, [1, 2, 0, 1, 2]);
    }

    #[test]
    fn one_endpoint_is_tried_again_and_again() {
        let mut endpoints = Endpoints::new(urls(1), 0);
        assert_eq!(endpoints.next_endpoint().index, 0);
        assert_eq!(endpoints.next_endpoint().index, 0);
    }

    #[test]
    fn the_logged_url_has_no_password() {
        let mut endpoints = Endpoints::shuffled(urls(2));
        let endpoint = endpoints.next_endpoint();
        assert!(endpoint.url.expose().contains("secret"));
        assert!(
            !endpoint.redacted.contains("secret"),
            "{}",
            endpoint.redacted
        );
    }

    #[test]
    fn a_shuffled_start_reaches_every_endpoint_in_one_round() {
        let mut endpoints = Endpoints::shuffled(urls(4));
        let mut seen: Vec<usize> = (0..4).map(|_| endpoints.next_endpoint().index).collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3]);
    }
}
