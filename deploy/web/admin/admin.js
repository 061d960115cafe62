// 芯图相册 管理后台: talks to /api/v1/admin/* on its own origin (lighttpd proxies it to the gateway).
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var app = $('app');
  var state = { range: '24h', tab: 'overview' };

  var ERRORS = {
    invalid_credentials: '用户名或密码错误',
    admin_locked: '此网络登录失败次数过多，已暂时锁定，请稍后再试',
    admin_sign_in_required: '登录已失效，请重新登录',
    admin_unavailable: '登录服务暂时不可用，请稍后再试',
    origin_not_allowed: '请求来源不被允许，请从管理后台页面操作',
    invalid_argument: '参数不正确',
    not_found: '找不到该用户',
    user_not_found: '找不到该用户',
    insufficient_credits: '用户额度不足，无法扣减',
    network: '网络异常，无法连接服务器',
    server: '服务器暂时不可用，请稍后重试'
  };

  function show(view) {
    app.dataset.state = view;
    ['loading', 'login', 'main'].forEach(function (v) { $('view-' + v).hidden = v !== view; });
  }

  // Resolves to {status, body, code}; status 0 means the network failed.
  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        var code = data && data.error && data.error.code;
        if (!res.ok && !code) code = res.status >= 500 ? 'server' : 'http_' + res.status;
        return { status: res.status, body: data, code: code || null };
      });
    }, function () {
      return { status: 0, body: null, code: 'network' };
    });
  }

  function describe(r) {
    var text = ERRORS[r.code] || ('请求失败（' + r.code + '）');
    if (r.status >= 500 && r.code !== 'server') text = ERRORS.server + '（' + r.code + '）';
    return text;
  }

  // A failed call: a lost session goes back to the login form; anything else is reported.
  function failed(r, target) {
    if (r.status === 401) { toLogin(ERRORS.admin_sign_in_required); return; }
    if (target) { target.textContent = describe(r); target.hidden = false; }
  }

  function yuan(fen) { return '¥' + (Number(fen || 0) / 100).toFixed(2); }
  // Where a model ran: our own server or the cloud (stats' `source` of a model call).
  var SOURCES = { local: '本地', model: '云端' };
  function num(n) { return Number(n || 0).toLocaleString('zh-CN'); }
  function ms(n) { return Number(n || 0).toFixed(1); }
  function pct(x) { return (Number(x || 0) * 100).toFixed(1) + '%'; }
  function time(s) {
    if (!s) return '—';
    var d = new Date(s);
    if (isNaN(d)) return s;
    var p = function (v) { return String(v).padStart(2, '0'); };
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
  }
  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function rows(tbody, cols, items, render) {
    if (!items || items.length === 0) {
      tbody.innerHTML = '<tr class="empty"><td colspan="' + cols + '">暂无数据</td></tr>';
      return;
    }
    tbody.innerHTML = items.map(render).join('');
  }
  function rowError(tbody, cols, r) {
    if (r.status === 401) { failed(r); return; }
    tbody.innerHTML = '<tr class="error"><td colspan="' + cols + '">' + esc(describe(r)) + '</td></tr>';
  }
  function loadingRow(tbody, cols) {
    tbody.innerHTML = '<tr class="empty"><td colspan="' + cols + '">加载中…</td></tr>';
  }

  // ---- sign-in ----
  function toLogin(message) {
    show('login');
    var err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    err.dataset.code = '';
    $('login-password').value = '';
    $('login-username').focus();
  }

  function toMain(username) {
    $('admin-name').textContent = username;
    $('global-error').hidden = true;
    show('main');
    selectTab('overview');
  }

  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var username = $('login-username').value.trim();
    var password = $('login-password').value;
    var err = $('login-error');
    if (!username || !password) {
      err.textContent = '请输入用户名和密码'; err.dataset.code = 'empty'; err.hidden = false; return;
    }
    $('login-submit').disabled = true;
    api('POST', '/api/v1/admin/login', { username: username, password: password }).then(function (r) {
      $('login-submit').disabled = false;
      if (r.status === 200) { toMain(r.body.username); return; }
      err.textContent = describe(r);
      err.dataset.code = r.code || '';
      err.hidden = false;
      $('login-password').value = '';
    });
  });

  $('logout').addEventListener('click', function () {
    api('POST', '/api/v1/admin/logout').then(function () { toLogin(''); });
  });

  // ---- tabs ----
  function selectTab(tab) {
    state.tab = tab;
    Array.prototype.forEach.call(document.querySelectorAll('.tab'), function (b) {
      b.classList.toggle('active', b.dataset.tab === tab);
    });
    Array.prototype.forEach.call(document.querySelectorAll('.tab-panel'), function (p) {
      p.hidden = p.id !== 'tab-' + tab;
    });
    if (tab === 'overview') loadOverview();
    if (tab === 'users') loadUsers();
    if (tab === 'orders') loadOrders();
    if (tab === 'bindings') loadBindings();
    if (tab === 'audit') loadAudit();
    if (tab === 'refunds') loadRefunds();
    if (tab === 'bills') loadBills();
  }
  $('tabs').addEventListener('click', function (ev) {
    var b = ev.target.closest('.tab');
    if (b) selectTab(b.dataset.tab);
  });

  // ---- overview ----
  $('range').addEventListener('click', function (ev) {
    var b = ev.target.closest('.seg-btn');
    if (!b) return;
    state.range = b.dataset.range;
    Array.prototype.forEach.call(document.querySelectorAll('.seg-btn'), function (x) {
      x.classList.toggle('active', x === b);
    });
    loadOverview();
  });

  function set(id, text) { $(id).textContent = text; }

  function loadOverview() {
    var to = Date.now();
    var from = to - (state.range === '7d' ? 7 * 24 : 24) * 3600 * 1000;
    var bucket = state.range === '7d' ? 'day' : 'hour';
    var q = '?from=' + from + '&to=' + to;
    var errBox = $('overview-error');
    errBox.hidden = true;
    app.dataset.overview = 'loading';
    api('GET', '/api/v1/admin/overview' + q).then(function (r) {
      if (r.status !== 200) {
        failed(r, errBox);
        rowError($('endpoints'), 5, r);
        rowError($('model-calls'), 7, r);
        app.dataset.overview = 'error';
        return;
      }
      var o = r.body;
      set('m-requests', num(o.requests));
      set('m-active-clients', num(o.active_clients));
      set('m-server-errors', num(o.server_errors));
      set('m-client-errors', num(o.client_errors));
      set('m-revenue', yuan(o.revenue_fen));
      set('m-refunds', o.refunds ? '退款 ' + yuan(o.refunded_fen) + '（' + num(o.refunds) + ' 笔）' : '无退款');
      set('m-paid-orders', num(o.paid_orders));
      set('m-order-mix', '会员 ' + num(o.member_orders) + ' · 额度 ' + num(o.credit_orders));
      set('m-new-followers', num(o.new_followers));
      set('m-active-members', num(o.active_members));
      set('m-total-users', num(o.total_users));
      var c = o.classification || {};
      set('m-classification', num(c.cache) + ' / ' + num(c.local) + ' / ' + num(c.model));
      set('m-cache-hit', '缓存命中率 ' + pct(c.cache_hit_rate));
      set('m-model-tokens', num(o.model_tokens));
      set('m-model-cost', yuan(o.model_cost_fen));
      var eps = (o.endpoints || []).slice().sort(function (a, b) { return b.requests - a.requests; });
      rows($('endpoints'), 5, eps, function (e) {
        return '<tr><td>' + esc(e.endpoint) + '</td><td class="num">' + num(e.requests) + '</td><td class="num">' +
          num(e.errors) + '</td><td class="num">' + ms(e.p50_ms) + '</td><td class="num">' + ms(e.p95_ms) + '</td></tr>';
      });
      // Already most calls first (the API's order).
      rows($('model-calls'), 7, o.model_calls, function (m) {
        return '<tr><td>' + esc(m.model) + '</td><td>' + esc(SOURCES[m.source] || m.source) + '</td><td class="num">' +
          num(m.calls) + '</td><td class="num">' + num(m.errors) + '</td><td class="num">' + num(m.tokens) +
          '</td><td class="num">' + ms(m.p50_ms) + '</td><td class="num">' + ms(m.p95_ms) + '</td></tr>';
      });
      app.dataset.overview = 'ready';
    });
    $('chart').innerHTML = '<p class="muted">加载中…</p>';
    api('GET', '/api/v1/admin/timeseries' + q + '&bucket=' + bucket).then(function (r) {
      if (r.status !== 200) {
        if (r.status === 401) { failed(r); return; }
        $('chart').innerHTML = '<p class="chart-error banner error">' + esc(describe(r)) + '</p>';
        return;
      }
      drawChart(r.body.points || [], bucket, from, to);
    });
  }

  // An inline SVG line chart: requests, errors and model calls per bucket.
  function drawChart(points, bucket, from, to) {
    var box = $('chart');
    var step = bucket === 'day' ? 86400000 : 3600000;
    // Fill the empty buckets so the axis covers the whole range.
    var byAt = {};
    points.forEach(function (p) { byAt[Math.floor(new Date(p.at).getTime() / step) * step] = p; });
    var series = [];
    for (var t = Math.floor(from / step) * step; t <= to; t += step) {
      var p = byAt[t] || {};
      series.push({ at: t, requests: p.requests || 0, errors: p.errors || 0, model_calls: p.model_calls || 0 });
    }
    var total = series.reduce(function (s, p) { return s + p.requests; }, 0);
    if (total === 0) {
      box.innerHTML = '<div class="chart-empty muted" style="padding:90px 0;text-align:center">暂无数据</div>';
      return;
    }
    var W = 1000, H = 240, L = 48, R = 12, T = 12, B = 28;
    var max = Math.max.apply(null, series.map(function (p) { return Math.max(p.requests, p.errors, p.model_calls); }));
    var nice = Math.max(1, Math.ceil(max / 4)) * 4;
    var x = function (i) { return L + (series.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (series.length - 1)); };
    var y = function (v) { return T + (H - T - B) * (1 - v / nice); };
    var svg = '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" role="img" aria-label="请求趋势">';
    for (var g = 0; g <= 4; g++) {
      var v = nice * g / 4, yy = y(v);
      svg += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + yy + '" y2="' + yy + '" stroke="#e6e9f0"/>';
      svg += '<text x="' + (L - 6) + '" y="' + (yy + 4) + '" text-anchor="end">' + num(v) + '</text>';
    }
    var every = Math.max(1, Math.ceil(series.length / 8));
    series.forEach(function (p, i) {
      if (i % every !== 0) return;
      var d = new Date(p.at);
      var label = bucket === 'day' ? (d.getMonth() + 1) + '/' + d.getDate() : String(d.getHours()).padStart(2, '0') + ':00';
      var anchor = i === 0 ? 'start' : (i > series.length - every ? 'end' : 'middle');
      svg += '<text x="' + x(i) + '" y="' + (H - 8) + '" text-anchor="' + anchor + '">' + label + '</text>';
    });
    [['requests', '#3452e1'], ['errors', '#f04438'], ['model_calls', '#f79009']].forEach(function (s) {
      var pts = series.map(function (p, i) { return x(i).toFixed(1) + ',' + y(p[s[0]]).toFixed(1); }).join(' ');
      svg += '<polyline fill="none" stroke="' + s[1] + '" stroke-width="2" vector-effect="non-scaling-stroke" points="' + pts + '"/>';
      series.forEach(function (p, i) {
        if (p[s[0]] > 0) svg += '<circle cx="' + x(i) + '" cy="' + y(p[s[0]]) + '" r="3" fill="' + s[1] + '"><title>' + num(p[s[0]]) + '</title></circle>';
      });
    });
    box.innerHTML = svg + '</svg>';
  }

  // ---- tables ----
  // ---- list pages and CSV export ----
  var PAGE_SIZE = 50;
  var offsets = { users: 0, orders: 0, bindings: 0, audit: 0, refunds: 0, bills: 0 };
  // The list's filter as query parameters ('' or 'a=b&…'); the export link carries it too.
  function listPath(name, filter) {
    var page = 'offset=' + offsets[name] + '&limit=' + PAGE_SIZE;
    $(name + '-export').href = '/api/v1/admin/' + name + '?format=csv' + (filter ? '&' + filter : '');
    return '/api/v1/admin/' + name + '?' + (filter ? filter + '&' : '') + page;
  }
  function showPager(name, total, shown) {
    var pager = $(name + '-pager');
    var at = offsets[name];
    pager.querySelector('.pager-at').textContent = total === 0 ? '' :
      '第 ' + num(at + 1) + '–' + num(at + shown) + ' 条，共 ' + num(total) + ' 条';
    pager.querySelector('[data-step="-1"]').disabled = at === 0;
    pager.querySelector('[data-step="1"]').disabled = at + PAGE_SIZE >= total;
  }
  function wirePager(name, load) {
    $(name + '-pager').addEventListener('click', function (ev) {
      var step = Number(ev.target.getAttribute('data-step'));
      if (!step || ev.target.disabled) return;
      offsets[name] = Math.max(0, offsets[name] + step * PAGE_SIZE);
      load();
    });
  }

  function loadUsers() {
    var tbody = $('users');
    loadingRow(tbody, 10);
    var prefix = $('users-openid').value.trim();
    api('GET', listPath('users', prefix ? 'openid=' + encodeURIComponent(prefix) : '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 10, r); return; }
      set('users-total', '共 ' + num(r.body.total) + ' 位用户');
      showPager('users', r.body.total, r.body.users.length);
      rows(tbody, 10, r.body.users, function (u) {
        var erased = u.openid.indexOf('erased:') === 0;
        var actions = erased ? '<span class="tag">已删除</span>' :
          '<a class="btn ghost small" href="/api/v1/admin/users/' + encodeURIComponent(u.openid) + '/data" download>导出</a> ' +
          '<button class="btn ghost small erase" type="button" data-openid="' + esc(u.openid) + '">删除</button>';
        return '<tr><td>' + esc(u.user_id) + '</td><td>' + esc(u.openid) + '</td><td>' +
          (u.following ? '<span class="tag ok">已关注</span>' : '<span class="tag">未关注</span>') + '</td><td class="num">' +
          num(u.remaining_credits) + '</td><td class="num">' + num(u.held_credits) + '</td><td class="num">' + num(u.total_credits) +
          '</td><td>' + (u.is_member ? '<span class="tag ok">会员至 ' + esc(time(u.member_expire_at)) + '</span>' : '<span class="tag">否</span>') +
          '</td><td>' + esc(time(u.created_at)) + '</td><td>' + esc(time(u.last_active_at)) + '</td><td class="actions">' + actions + '</td></tr>';
      });
    });
  }
  // ---- personal data: a user's erasure, from their row ----
  var erasing = null;
  $('users').addEventListener('click', function (ev) {
    var button = ev.target.closest('button.erase');
    if (!button) return;
    erasing = button.getAttribute('data-openid');
    set('erase-openid', erasing);
    $('erase-reason').value = '';
    $('erase-submit').disabled = false;
    $('erase-result').hidden = true;
    $('erase-form').hidden = false;
    $('erase-reason').focus();
  });
  $('erase-cancel').addEventListener('click', function () { $('erase-form').hidden = true; erasing = null; });
  $('erase-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!erasing) return;
    var out = $('erase-result');
    var reason = $('erase-reason').value.trim();
    if (!reason) {
      out.className = 'result err'; out.dataset.kind = 'invalid'; out.textContent = '请填写删除原因'; out.hidden = false; return;
    }
    $('erase-submit').disabled = true;
    api('POST', '/api/v1/admin/users/' + encodeURIComponent(erasing) + '/erasure', { reason: reason }).then(function (r) {
      $('erase-submit').disabled = false;
      if (r.status === 401) { failed(r); return; }
      if (r.status === 200) {
        out.className = 'result ok';
        out.dataset.kind = 'ok';
        out.textContent = '已删除 ' + erasing + ' 的个人数据，作废额度 ' + num(r.body.credits_forfeited) +
          (r.body.follow_ups === 'done' ? '。' : '；照片与统计数据稍后自动清除。');
        // Done: the same user cannot be erased twice.
        $('erase-submit').disabled = true;
        erasing = null;
        loadUsers();
      } else {
        out.className = 'result err';
        out.dataset.kind = 'error';
        out.textContent = '删除失败：' + describe(r) + '（' + r.code + '）';
      }
      out.hidden = false;
    });
  });
  $('users-form').addEventListener('submit', function (ev) { ev.preventDefault(); offsets.users = 0; loadUsers(); });
  wirePager('users', loadUsers);

  var ORDER_STATUS = { paid: ['已支付', 'ok'], notpay: ['未支付', 'warn'], closed: ['已关闭', ''], failed: ['支付失败', 'err'] };
  var ORDER_TYPE = { member: '会员', credits: '额度' };
  function loadOrders() {
    var tbody = $('orders');
    loadingRow(tbody, 10);
    var status = $('orders-status').value;
    api('GET', listPath('orders', status ? 'status=' + encodeURIComponent(status) : '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 10, r); return; }
      set('orders-total', '共 ' + num(r.body.total) + ' 笔订单');
      showPager('orders', r.body.total, r.body.orders.length);
      rows(tbody, 10, r.body.orders, function (o) {
        var s = ORDER_STATUS[o.status] || [o.status, ''];
        var left = o.total_fee - (o.refunded_fee || 0);
        var action = o.status === 'paid' && left > 0 ?
          '<button class="btn ghost small refund" type="button" data-order="' + esc(o.order_no) + '" data-left="' + esc(left) + '">退款</button>' : '';
        return '<tr><td>' + esc(o.order_no) + '</td><td>' + esc(o.openid) + '</td><td>' + esc(ORDER_TYPE[o.order_type] || o.order_type) +
          '</td><td class="num">' + yuan(o.total_fee) + '</td><td class="num">' + (o.refunded_fee ? yuan(o.refunded_fee) : '—') +
          '</td><td class="num">' + (o.credits_amount ? num(o.credits_amount) : '—') +
          '</td><td><span class="tag ' + s[1] + '">' + esc(s[0]) + '</span></td><td>' + esc(time(o.created_at)) + '</td><td>' + esc(time(o.paid_at)) +
          '</td><td>' + action + '</td></tr>';
      });
    });
  }

  // ---- refunds: from a paid order's row ----
  var refunding = null;
  $('orders').addEventListener('click', function (ev) {
    var button = ev.target.closest('button.refund');
    if (!button) return;
    refunding = { order: button.getAttribute('data-order'), left: Number(button.getAttribute('data-left')) };
    set('refund-order', refunding.order);
    set('refund-left', '可退金额：' + yuan(refunding.left));
    $('refund-amount').value = (refunding.left / 100).toFixed(2);
    $('refund-amount').max = (refunding.left / 100).toFixed(2);
    $('refund-reason').value = '';
    $('refund-result').hidden = true;
    $('refund-form').hidden = false;
    $('refund-reason').focus();
  });
  $('refund-cancel').addEventListener('click', function () { $('refund-form').hidden = true; refunding = null; });
  var REFUND_STATUS = { pending: ['待确认', 'warn'], processing: ['退款中', 'warn'], success: ['已退款', 'ok'], failed: ['未成功，已恢复', 'err'], abnormal: ['异常，需人工处理', 'err'] };
  $('refund-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!refunding) return;
    var out = $('refund-result');
    var fen = Math.round(Number($('refund-amount').value) * 100);
    var reason = $('refund-reason').value.trim();
    var problem = !(fen > 0) ? '请填写退款金额' : fen > refunding.left ? '退款金额不能超过 ' + yuan(refunding.left) : !reason ? '请填写退款原因' : '';
    if (problem) {
      out.className = 'result err'; out.dataset.kind = 'invalid'; out.textContent = problem; out.hidden = false; return;
    }
    $('refund-submit').disabled = true;
    api('POST', '/api/v1/admin/orders/' + encodeURIComponent(refunding.order) + '/refunds', { refund_fee: fen, reason: reason }).then(function (r) {
      $('refund-submit').disabled = false;
      if (r.status === 401) { failed(r); return; }
      if (r.status === 200) {
        var s = REFUND_STATUS[r.body.status] || [r.body.status, ''];
        out.className = 'result ok';
        out.dataset.kind = 'ok';
        out.innerHTML = '已提交退款 ' + esc(yuan(r.body.refund_fee)) + '（' + esc(r.body.refund_no) + '），状态：<b id="refund-status">' + esc(s[0]) +
          '</b>；收回额度 ' + esc(num(r.body.credits_taken)) + (r.body.membership_days ? '，会员缩短 ' + esc(r.body.membership_days) + ' 天' : '');
        refunding.left -= r.body.refund_fee;
        set('refund-left', '可退金额：' + yuan(refunding.left));
        loadOrders();
      } else {
        out.className = 'result err';
        out.dataset.kind = 'error';
        out.textContent = '退款失败：' + describe(r) + '（' + r.code + '）';
      }
      out.hidden = false;
    });
  });

  function loadRefunds() {
    var tbody = $('refunds');
    loadingRow(tbody, 11);
    api('GET', listPath('refunds', '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 11, r); return; }
      set('refunds-total', '共 ' + num(r.body.total) + ' 笔退款');
      showPager('refunds', r.body.total, r.body.refunds.length);
      rows(tbody, 11, r.body.refunds, function (x) {
        var s = REFUND_STATUS[x.status] || [x.status, ''];
        return '<tr><td>' + esc(x.refund_no) + '</td><td>' + esc(x.order_no) + '</td><td>' + esc(x.openid || '—') + '</td><td class="num">' + yuan(x.refund_fee) +
          '</td><td class="num">' + num(x.credits_taken) + '</td><td class="num">' + (x.membership_days ? num(x.membership_days) : '—') +
          '</td><td><span class="tag ' + s[1] + '" title="' + esc(x.failure || '') + '">' + esc(s[0]) + '</span></td><td>' + esc(x.reason) +
          '</td><td>' + esc(x.admin) + '</td><td>' + esc(time(x.created_at)) + '</td><td>' + esc(time(x.settled_at)) + '</td></tr>';
      });
    });
  }
  $('refunds-refresh').addEventListener('click', loadRefunds);
  wirePager('refunds', loadRefunds);
  $('orders-status').addEventListener('change', function () { offsets.orders = 0; loadOrders(); });
  wirePager('orders', loadOrders);

  // ---- the daily bill reconciliation ----
  var BILL_STATUS = { matched: ['一致', 'ok'], differences: ['有差异', 'err'], no_bill: ['无交易', ''], failed: ['失败', 'err'], running: ['核对中', 'warn'] };
  var DIFFERENCE = {
    unknown_order: '微信有此收款，我方无此订单', not_paid_here: '微信已收款，我方未入账', amount_mismatch: '金额不一致',
    transaction_mismatch: '微信交易号不一致', missing_from_bill: '我方已入账，微信账单中没有', unknown_refund: '微信有此退款，我方无记录',
    refund_amount_mismatch: '退款金额不一致', refund_not_settled_here: '微信已退款，我方未完成', refund_missing_from_bill: '我方已退款，微信账单中没有'
  };
  function fenOrDash(fen) { return fen == null ? '—' : yuan(fen); }
  function showBillReport(report) {
    set('bill-report-date', report.check ? report.check.bill_date : '');
    rows($('bill-differences'), 5, report.differences, function (d) {
      return '<tr><td>' + esc(DIFFERENCE[d.kind] || d.kind) + '</td><td>' + esc(d.order_no || '—') + '</td><td>' + esc(d.refund_no || '—') +
        '</td><td class="num">' + fenOrDash(d.wechat_fee) + '</td><td class="num">' + fenOrDash(d.our_fee) + '</td></tr>';
    });
    $('bill-report').hidden = false;
  }
  function loadBills() {
    var tbody = $('bills');
    loadingRow(tbody, 8);
    api('GET', listPath('bills', '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 8, r); return; }
      set('bills-total', '共 ' + num(r.body.total) + ' 天');
      showPager('bills', r.body.total, r.body.bills.length);
      rows(tbody, 8, r.body.bills, function (b) {
        var s = BILL_STATUS[b.status] || [b.status, ''];
        return '<tr class="clickable" data-date="' + esc(b.bill_date) + '"><td>' + esc(b.bill_date) + '</td><td><span class="tag ' + s[1] + '" title="' + esc(b.failure || '') + '">' +
          esc(s[0]) + '</span></td><td class="num">' + num(b.wechat_payments) + '</td><td class="num">' + yuan(b.wechat_payment_fen) +
          '</td><td class="num">' + num(b.wechat_refunds) + '</td><td class="num">' + yuan(b.wechat_refund_fen) + '</td><td class="num">' +
          num(b.differences) + '</td><td>' + esc(time(b.checked_at)) + '</td></tr>';
      });
    });
  }
  $('bills').addEventListener('click', function (ev) {
    var row = ev.target.closest('tr[data-date]');
    if (!row) return;
    api('GET', '/api/v1/admin/bills/' + encodeURIComponent(row.getAttribute('data-date'))).then(function (r) {
      if (r.status === 200) showBillReport(r.body);
    });
  });
  $('bills-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var out = $('bills-result');
    var day = $('bills-date').value;
    if (!day) { out.className = 'result err'; out.dataset.kind = 'invalid'; out.textContent = '请选择账单日期'; out.hidden = false; return; }
    $('bills-check').disabled = true;
    api('POST', '/api/v1/admin/bills/' + encodeURIComponent(day) + '/check').then(function (r) {
      $('bills-check').disabled = false;
      if (r.status === 401) { failed(r); return; }
      if (r.status === 200) {
        var s = BILL_STATUS[r.body.check.status] || [r.body.check.status, ''];
        out.className = 'result ' + (r.body.differences.length ? 'err' : 'ok');
        out.dataset.kind = 'ok';
        out.innerHTML = esc(day) + ' 核对完成：<b id="bills-status">' + esc(s[0]) + '</b>，差异 ' + esc(r.body.differences.length) + ' 项';
        showBillReport(r.body);
        loadBills();
      } else {
        out.className = 'result err';
        out.dataset.kind = 'error';
        out.textContent = '核对失败：' + describe(r) + '（' + r.code + '）';
      }
      out.hidden = false;
    });
  });
  wirePager('bills', loadBills);

  var BINDING_STATUS = { completed: ['已绑定', 'ok'], pending: ['等待扫码', 'warn'], expired: ['已过期', ''] };
  function loadBindings() {
    var tbody = $('bindings');
    loadingRow(tbody, 7);
    api('GET', listPath('bindings', '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 7, r); return; }
      set('bindings-total', '共 ' + num(r.body.total) + ' 条绑定');
      showPager('bindings', r.body.total, r.body.bindings.length);
      rows(tbody, 7, r.body.bindings, function (b) {
        var s = BINDING_STATUS[b.status] || [b.status, ''];
        return '<tr><td>' + esc(b.scene_id) + '</td><td>' + esc(b.client_id) + '</td><td><span class="tag ' + s[1] + '">' + esc(s[0]) +
          '</span></td><td>' + esc(b.openid || '—') + '</td><td>' + esc(time(b.created_at)) + '</td><td>' + esc(time(b.completed_at)) +
          '</td><td>' + esc(time(b.expire_at)) + '</td></tr>';
      });
    });
  }
  $('bindings-refresh').addEventListener('click', loadBindings);
  wirePager('bindings', loadBindings);

  var AUDIT_ACTION = { adjust_credits: '人工调整', grant: '服务发放', refund: '退款', erase: '删除个人数据' };
  function loadAudit() {
    var tbody = $('audit');
    loadingRow(tbody, 8);
    api('GET', listPath('audit', '')).then(function (r) {
      if (r.status !== 200) { rowError(tbody, 8, r); return; }
      set('audit-total', '共 ' + num(r.body.total) + ' 条记录');
      showPager('audit', r.body.total, r.body.audit.length);
      rows(tbody, 8, r.body.audit, function (a) {
        var delta = (a.delta > 0 ? '+' : '') + num(a.delta);
        return '<tr><td>' + esc(a.id) + '</td><td>' + esc(time(a.created_at)) + '</td><td>' + esc(a.actor) + '</td><td>' +
          esc(AUDIT_ACTION[a.action] || a.action) + '</td><td>' + esc(a.openid || '—') + '</td><td class="num">' + esc(delta) +
          '</td><td>' + esc(a.reason) + '</td><td>' + esc(a.reference) + '</td></tr>';
      });
    });
  }
  $('audit-refresh').addEventListener('click', loadAudit);
  wirePager('audit', loadAudit);

  // ---- credit adjustment ----
  $('adjust-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var out = $('adjust-result');
    var openid = $('adjust-openid').value.trim();
    var delta = Number($('adjust-delta').value);
    var reason = $('adjust-reason').value.trim();
    var problem = !openid ? '请填写用户 openid' : (!Number.isInteger(delta) || delta === 0) ? '调整数量须为非零整数' : !reason ? '请填写调整原因' : '';
    if (problem) {
      out.className = 'result err'; out.dataset.kind = 'invalid'; out.textContent = problem; out.hidden = false; return;
    }
    $('adjust-submit').disabled = true;
    api('POST', '/api/v1/admin/credits/adjust', { openid: openid, delta: delta, reason: reason }).then(function (r) {
      $('adjust-submit').disabled = false;
      if (r.status === 401) { failed(r); return; }
      if (r.status === 200) {
        out.className = 'result ok';
        out.dataset.kind = 'ok';
        out.innerHTML = '调整成功，' + esc(openid) + ' 当前剩余额度：<b id="adjust-balance">' + esc(r.body.remaining_credits) + '</b>';
      } else {
        out.className = 'result err';
        out.dataset.kind = 'error';
        out.textContent = '调整失败：' + describe(r) + '（' + r.code + '）';
      }
      out.hidden = false;
    });
  });

  // ---- start: signed in already? ----
  api('GET', '/api/v1/admin/me').then(function (r) {
    if (r.status === 200) { toMain(r.body.username); return; }
    if (r.status === 401) { toLogin(''); return; }
    toLogin('');
    var err = $('login-error');
    err.textContent = describe(r);
    err.dataset.code = r.code || '';
    err.hidden = false;
  });
})();
