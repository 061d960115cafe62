//! Photo location through the gateway: GPS coordinates in, Chinese place names out, offline.

use serde_json::{Value, json};

use e2e::{Options, System};

/// The system and the token of a client bound to WeChat (place names are for bound clients).
async fn start() -> (System, String) {
    let system = System::start(Options::default()).await;
    let token = system
        .bind_client("location-client", "o_location_user")
        .await;
    (system, token)
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

async fn locate_point(system: &System, token: &str, lat: f64, lng: f64) -> Value {
    let (lat, lng) = (lat.to_string(), lng.to_string());
    let (status, body) = locate(system, token, &[("lat", &lat), ("lng", &lng)]).await;
    assert_eq!(status, 200, "{body}");
    body
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
    let (system, token) = start().await;
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
        let body = locate_point(&system, &token, lat, lng).await;
        assert_eq!(body["found"], true, "{body}");
        assert_eq!(body["source"], "china_region", "{body}");
        assert_eq!(body["country"], "中国", "{body}");
        assert_eq!(body["province"], province, "{body}");
        assert_eq!(body["city"], city, "{body}");
        assert_eq!(body["district"], district, "{body}");
        assert_eq!(body["display"], display, "{body}");
        assert_eq!(body["lat"], lat, "the point is echoed");
    }
}

#[tokio::test]
async fn abroad_the_country_the_city_and_at_sea_nothing() {
    let (system, token) = start().await;
    // Tokyo Tower: in 港区, a ward of 东京.
    let tokyo = locate_point(&system, &token, 35.6586, 139.7454).await;
    assert_eq!(tokyo["found"], true, "{tokyo}");
    assert_eq!(tokyo["source"], "city");
    assert_eq!(tokyo["country"], "日本");
    assert_eq!(tokyo["province"], "东京");
    assert_eq!(tokyo["city"], "东京");
    assert_eq!(tokyo["display"], "日本 东京");
    assert_eq!(tokyo["untranslated"], json!([]));

    // Times Square: the city, not the neighbourhood.
    let times_square = locate_point(&system, &token, 40.7580, -73.9855).await;
    assert_eq!(times_square["display"], "美国 纽约", "{times_square}");
    // Central Park: in 曼哈顿, a borough well inside 纽约, which names the district.
    let central_park = locate_point(&system, &token, 40.7829, -73.9654).await;
    assert_eq!(central_park["city"], "纽约", "{central_park}");
    assert_eq!(central_park["district"], "曼哈顿", "{central_park}");
    assert_eq!(central_park["display"], "美国 纽约 曼哈顿");
    // India Gate: the capital, 新德里, inside the much bigger 德里.
    let india_gate = locate_point(&system, &token, 28.6129, 77.2295).await;
    assert_eq!(india_gate["display"], "印度 新德里", "{india_gate}");

    // Hallstatt: no source has its name in Chinese; the local name stands in, marked.
    let hallstatt = locate_point(&system, &token, 47.5622, 13.6493).await;
    assert_eq!(hallstatt["city"], "Hallstatt", "{hallstatt}");
    assert_eq!(hallstatt["untranslated"], json!(["city"]));

    // Taipei 101: to the city, with the names used on the mainland.
    let taipei = locate_point(&system, &token, 25.0340, 121.5645).await;
    assert_eq!(taipei["source"], "china_region", "{taipei}");
    assert_eq!(taipei["display"], "台湾省 台北市");

    let pacific = locate_point(&system, &token, 30.0, -150.0).await;
    assert_eq!(pacific["found"], false, "{pacific}");
    assert_eq!(pacific["source"], "none");
    assert_eq!(pacific["country"], Value::Null);
    assert_eq!(pacific["city"], Value::Null);
    assert_eq!(pacific["display"], "");
}

#[tokio::test]
async fn invalid_coordinates_are_refused_with_400() {
    let (system, token) = start().await;
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
    let (system, token) = start().await;
    let points = json!({ "points": [
        { "lat": 39.9087, "lng": 116.3975 },
        { "lat": 35.6896, "lng": 139.6917 },
        { "lat": 30.0, "lng": -150.0 },
        { "lat": 30.2437, "lng": 120.1410 },
    ]});
    let (status, body) = batch(&system, Some(&token), points).await;
    assert_eq!(status, 200, "{body}");
    let displays: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["display"].as_str().unwrap())
        .collect();
    assert_eq!(
        displays,
        ["北京市 东城区", "日本 东京", "", "浙江省 杭州市 西湖区"]
    );
    assert_eq!(body["results"][2]["found"], false);
    assert_eq!(body["results"][1]["lng"], 139.6917);
}

/// One setting (LOCATION_BATCH_MAX) sizes the batch for the gateway and the photo service alike:
/// raised, a larger batch goes through both; the gateway still refuses one over it.
#[tokio::test]
async fn the_batch_size_is_one_setting_for_gateway_and_photo() {
    let system = System::start(Options {
        photo: e2e::photo::PhotoOptions {
            location_batch_max: Some(250),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let token = system.bind_client("batch-pc", "o_batch_user").await;
    let points = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| json!({ "lat": 39.9087, "lng": 116.3975 }))
            .collect()
    };
    let (status, body) = batch(&system, Some(&token), json!({ "points": points(250) })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 250);
    assert_eq!(body["results"][249]["display"], "北京市 东城区");
    let (status, body) = batch(&system, Some(&token), json!({ "points": points(251) })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_batch_size");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 to 250")
    );
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole() {
    let (system, token) = start().await;
    let empty = json!({ "points": [] });
    let (status, body) = batch(&system, Some(&token), empty).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_batch_size");

    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({ "lat": 1.0, "lng": 1.0 }))
        .collect();
    let (status, body) = batch(&system, Some(&token), json!({ "points": too_many })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_batch_size");

    let one_bad = json!({ "points": [
        { "lat": 39.9087, "lng": 116.3975 },
        { "lat": 39.9087, "lng": 200.0 },
    ]});
    let (status, body) = batch(&system, Some(&token), one_bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_coordinate");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("points[1]"), "{message}");

    let (status, body) = batch(&system, Some(&token), json!({ "points": "everywhere" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
}
