//! The price table `ylambda cost` multiplies by: a TOML file, the us-east-1 list prices built in.
use serde::Deserialize;

use super::CostError;

/// The built-in table (list prices, us-east-1); `ylambda cost --prices FILE` replaces it.
pub const DEFAULT_PRICES: &str = include_str!("prices.toml");

/// Unit prices in USD. Every field is required so that a typo in a copied file is an error
/// instead of a service silently priced at zero.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub region: String,
    pub api_gateway: ApiGatewayPrices,
    pub lambda: LambdaPrices,
    pub dynamodb: DynamoDbPrices,
    pub s3: S3Prices,
    pub elasticache: ElastiCachePrices,
    pub redis_url: RedisUrlPrices,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiGatewayPrices {
    pub per_million_messages: f64,
    pub per_million_connection_minutes: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LambdaPrices {
    pub per_million_requests: f64,
    pub per_gb_second: f64,
    pub memory_mb: f64,
    pub ms_per_invocation: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbPrices {
    pub per_million_read_units: f64,
    pub per_million_write_units: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Prices {
    pub per_thousand_put: f64,
    pub per_thousand_get: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ElastiCachePrices {
    pub nat_gateway_per_hour: f64,
    pub nat_per_gb: f64,
    pub public_ipv4_per_hour: f64,
    pub cache_per_gb_hour: f64,
    pub cache_min_gb: f64,
    pub per_million_ecpus: f64,
    pub nat_bytes_per_post: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisUrlPrices {
    pub per_hour: f64,
}

impl PriceTable {
    /// Parses a price table; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, CostError> {
        let table: PriceTable = toml::from_str(text).map_err(|e| CostError::Prices {
            file: source.to_string(),
            reason: e.to_string(),
        })?;
        table.check(source)?;
        Ok(table)
    }

    /// The built-in us-east-1 table.
    pub fn builtin() -> Result<Self, CostError> {
        Self::parse(DEFAULT_PRICES, "the built-in price table")
    }

    /// A negative or non-finite price is a mistake in the file, not a discount.
    fn check(&self, source: &str) -> Result<(), CostError> {
        let l = &self.lambda;
        let e = &self.elasticache;
        let fields = [
            (
                "api_gateway.per_million_messages",
                self.api_gateway.per_million_messages,
            ),
            (
                "api_gateway.per_million_connection_minutes",
                self.api_gateway.per_million_connection_minutes,
            ),
            ("lambda.per_million_requests", l.per_million_requests),
            ("lambda.per_gb_second", l.per_gb_second),
            ("lambda.memory_mb", l.memory_mb),
            ("lambda.ms_per_invocation", l.ms_per_invocation),
            (
                "dynamodb.per_million_read_units",
                self.dynamodb.per_million_read_units,
            ),
            (
                "dynamodb.per_million_write_units",
                self.dynamodb.per_million_write_units,
            ),
            ("s3.per_thousand_put", self.s3.per_thousand_put),
            ("s3.per_thousand_get", self.s3.per_thousand_get),
            ("elasticache.nat_gateway_per_hour", e.nat_gateway_per_hour),
            ("elasticache.nat_per_gb", e.nat_per_gb),
            ("elasticache.public_ipv4_per_hour", e.public_ipv4_per_hour),
            ("elasticache.cache_per_gb_hour", e.cache_per_gb_hour),
            ("elasticache.cache_min_gb", e.cache_min_gb),
            ("elasticache.per_million_ecpus", e.per_million_ecpus),
            ("elasticache.nat_bytes_per_post", e.nat_bytes_per_post),
            ("redis_url.per_hour", self.redis_url.per_hour),
        ];
        match fields.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            Some((name, value)) => Err(CostError::Prices {
                file: source.to_string(),
                reason: format!("{name} = {value}: a price must be a finite number >= 0"),
            }),
            None => Ok(()),
        }
    }
}
