//! Photo location through the gateway: GPS coordinates in, Chinese place names out, offline.
//! An app's calls go through the typed Rust client (`clients/rust`), so the answers are read as
//! the OpenAPI document describes them; requests no typed client can send (a malformed query or
//! body, no token) are sent raw.

use serde_json::{Value, json};
use xintu_client::{Client, types};

use e2e::api::refusal;
use e2e::{Options, System};

/// The system, the token of a client bound to WeChat (place names are for bound clients), and
/// the typed client acting as that app.
async fn start() -> (System, String, Client) {
    start_with(Options::default()).await
}

async fn start_with(options: Options) -> (System, String, Client) {
    let system = System::start(options).await;
    let token = system
        .bind_client("location-client", "o_location_user")
        .await;
    let api = system.app(&token);
    (system, token, api)
}

async fn place(api: &Client, lat: f64, lng: f64) -> types::LocationOut {
    api.locate()
        .lat(lat)
        .lng(lng)
        .send()
        .await
        .unwrap()
        .into_inner()
}

fn points(coordinates: &[(f64, f64)]) -> types::LocationBatchIn {
    types::LocationBatchIn {
        points: coordinates
            .iter()
            .map(|&(lat, lng)| types::PointIn { lat, lng })
            .collect(),
    }
}

async fn locate(system: &System, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = system
        .http
        .get(format!("{}/api/v1/location", system.gateway()))
        .query(query)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn batch(system: &System, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = system
        .http
        .post(format!("{}/api/v1/location/batch", system.gateway()))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn places_in_china_get_province_city_and_district() {
    let (_system, _, api) = start().await;
    // WGS-84, as a phone's GPS writes them: (lat, lng, province, city, district, display).
    let table = [
        (
            39.9087,
            116.3975,
            "北京市",
            "北京市",
            "东城区",
            "北京市 东城区",
        ), // 天安门
        (
            31.2380,
            121.4860,
            "上海市",
            "上海市",
            "黄浦区",
            "上海市 黄浦区",
        ), // 外滩
        (
            30.2437,
            120.1410,
            "浙江省",
            "杭州市",
            "西湖区",
            "浙江省 杭州市 西湖区",
        ), // 西湖
        (
            23.1064,
            113.3245,
            "广东省",
            "广州市",
            "海珠区",
            "广东省 广州市 海珠区",
        ), // 广州塔
        (
            30.6598,
            104.0633,
            "四川省",
            "成都市",
            "青羊区",
            "四川省 成都市 青羊区",
        ), // 人民公园
        (
            22.2819,
            114.1582,
            "香港特别行政区",
            "香港特别行政区",
            "中西区",
            "香港特别行政区 中西区",
        ), // 中环
    ];
    for (lat, lng, province, city, district, display) in table {
        let found = place(&api, lat, lng).await;
        assert!(found.found, "{found:?}");
        assert_eq!(found.source, "china_region", "{found:?}");
        assert_eq!(found.country.as_deref(), Some("中国"), "{found:?}");
        assert_eq!(found.province.as_deref(), Some(province), "{found:?}");
        assert_eq!(found.city.as_deref(), Some(city), "{found:?}");
        assert_eq!(found.district.as_deref(), Some(district), "{found:?}");
        assert_eq!(found.display, display, "{found:?}");
        assert_eq!((found.lat, found.lng), (lat, lng), "the point is echoed");
    }
}

#[tokio::test]
async fn abroad_the_country_the_city_and_at_sea_nothing() {
    let (_system, _, api) = start().await;
    // Tokyo Tower: in 港区, a ward of 东京.
    let tokyo = place(&api, 35.6586, 139.7454).await;
    assert!(tokyo.found, "{tokyo:?}");
    assert_eq!(tokyo.source, "city");
    assert_eq!(tokyo.country.as_deref(), Some("日本"));
    assert_eq!(tokyo.province.as_deref(), Some("东京"));
    assert_eq!(tokyo.city.as_deref(), Some("东京"));
    assert_eq!(tokyo.display, "日本 东京");
    assert!(tokyo.untranslated.is_empty(), "{tokyo:?}");

    // Times Square: the city, not the neighbourhood.
    let times_square = place(&api, 40.7580, -73.9855).await;
    assert_eq!(times_square.display, "美国 纽约", "{times_square:?}");
    // Central Park: in 曼哈顿, a borough well inside 纽约, which names the district.
    let central_park = place(&api, 40.7829, -73.9654).await;
    assert_eq!(
        central_park.city.as_deref(),
        Some("纽约"),
        "{central_park:?}"
    );
    assert_eq!(
        central_park.district.as_deref(),
        Some("曼哈顿"),
        "{central_park:?}"
    );
    assert_eq!(central_park.display, "美国 纽约 曼哈顿");
    // India Gate: the capital, 新德里, inside the much bigger 德里.
    let india_gate = place(&api, 28.6129, 77.2295).await;
    assert_eq!(india_gate.display, "印度 新德里", "{india_gate:?}");

    // Hallstatt: no source has its name in Chinese; the local name stands in, marked.
    let hallstatt = place(&api, 47.5622, 13.6493).await;
    assert_eq!(
        hallstatt.city.as_deref(),
        Some("Hallstatt"),
        "{hallstatt:?}"
    );
    assert_eq!(hallstatt.untranslated, ["city"]);

    // Taipei 101: to the city, with the names used on the mainland.
    let taipei = place(&api, 25.0340, 121.5645).await;
    assert_eq!(taipei.source, "china_region", "{taipei:?}");
    assert_eq!(taipei.display, "台湾省 台北市");

    let pacific = place(&api, 30.0, -150.0).await;
    assert!(!pacific.found, "{pacific:?}");
    assert_eq!(pacific.source, "none");
    assert_eq!(pacific.country, None);
    assert_eq!(pacific.city, None);
    assert_eq!(pacific.display, "");
}

#[tokio::test]
async fn invalid_coordinates_are_refused_with_400() {
    let (system, token, _) = start().await;
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("lat", "91"), ("lng", "0")], "invalid_coordinate"),
        (&[("lat", "-90.5"), ("lng", "0")], "invalid_coordinate"),
        (&[("lat", "0"), ("lng", "180.01")], "invalid_coordinate"),
        (&[("lat", "NaN"), ("lng", "116.4")], "invalid_coordinate"),
        (&[("lat", "39.9"), ("lng", "inf")], "invalid_coordinate"),
        (&[("lat", "north"), ("lng", "116.4")], "invalid_query"),
        (&[("lat", "39.9")], "invalid_query"),
    ];
    for (query, code) in cases {
        let (status, body) = locate(&system, &token, query).await;
        assert_eq!(status, 400, "{query:?}: {body}");
        assert_eq!(body["error"]["code"], code, "{query:?}: {body}");
    }
}

#[tokio::test]
async fn a_client_token_is_required() {
    let system = System::start(Options::default()).await;
    let url = format!("{}/api/v1/location", system.gateway());
    let point = [("lat", "39.9087"), ("lng", "116.3975")];
    let anonymous = system.http.get(&url).query(&point).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_client_token");
    let forged = system
        .http
        .get(&url)
        .query(&point)
        .bearer_auth("not-a-token-we-issued")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let (status, _) = batch(&system, None, json!({ "points": [{ "lat": 0, "lng": 0 }] })).await;
    assert_eq!(status, 401);

    // The contract is documented, and readiness covers the photo service.
    let doc: Value = system
        .http
        .get(format!("{}/api/v1/openapi.json", system.gateway()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/location"]["get"].is_object(), "{doc}");
    assert!(doc["paths"]["/api/v1/location/batch"]["post"].is_object());
    let ready: Value = system
        .http
        .get(format!("{}/readyz", system.gateway()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["photo"], true, "{ready}");
}

#[tokio::test]
async fn a_batch_is_answered_point_by_point_in_order() {
    let (_system, _, api) = start().await;
    let coordinates = [
        (39.9087, 116.3975),
        (35.6896, 139.6917),
        (30.0, -150.0),
        (30.2437, 120.1410),
    ];
    let answer = api
        .locate_batch()
        .body(points(&coordinates))
        .send()
        .await
        .unwrap()
        .into_inner();
    let displays: Vec<&str> = answer
        .results
        .iter()
        .map(|found| found.display.as_str())
        .collect();
    assert_eq!(
        displays,
        ["北京市 东城区", "日本 东京", "", "浙江省 杭州市 西湖区"]
    );
    assert!(!answer.results[2].found);
    assert_eq!(answer.results[1].lng, 139.6917);
}

/// One setting (LOCATION_BATCH_MAX) sizes the batch for the gateway and the photo service alike:
/// raised, a larger batch goes through both; the gateway still refuses one over it.
#[tokio::test]
async fn the_batch_size_is_one_setting_for_gateway_and_photo() {
    let (_system, _, api) = start_with(Options {
        photo: e2e::photo::PhotoOptions {
            location_batch_max: Some(250),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let beijing = |n: usize| points(&vec![(39.9087, 116.3975); n]);
    let answer = api
        .locate_batch()
        .body(beijing(250))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results.len(), 250);
    assert_eq!(answer.results[249].display, "北京市 东城区");
    let refused = refusal(api.locate_batch().body(beijing(251)).send().await);
    assert_eq!(refused.status_and_code(), (400, "invalid_batch_size"));
    assert!(refused.message.contains("1 to 250"), "{refused:?}");
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole() {
    let (system, token, api) = start().await;
    for size in [0, 101] {
        let too_few_or_many = points(&vec![(1.0, 1.0); size]);
        let refused = refusal(api.locate_batch().body(too_few_or_many).send().await);
        assert_eq!(
            refused.status_and_code(),
            (400, "invalid_batch_size"),
            "{size} points"
        );
    }

    let one_bad = points(&[(39.9087, 116.3975), (39.9087, 200.0)]);
    let refused = refusal(api.locate_batch().body(one_bad).send().await);
    assert_eq!(refused.status_and_code(), (400, "invalid_coordinate"));
    assert!(refused.message.contains("points[1]"), "{refused:?}");

    // Not the documented shape: only a raw request can send it.
    let (status, body) = batch(&system, Some(&token), json!({ "points": "everywhere" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
}
